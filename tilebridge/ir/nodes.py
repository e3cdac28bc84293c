"""The loop-level kernel IR shared by every frontend.

A `Kernel` is the body of one program (one grid point): scalar parameters and pointers, program-local
`Buffer`s with static sizes, and statements — loops (serial or vectorizable), conditionals, stores to
buffers and to memory, atomics. Expressions are immutable trees of scalar operations; the C renderer
turns each into one C expression, so a fused elementwise chain becomes one loop body.
"""
from __future__ import annotations

from dataclasses import dataclass, field


# ---- expressions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Const:
    value: int | float | bool
    dtype: str


@dataclass(frozen=True)
class Var:
    name: str
    dtype: str


@dataclass(frozen=True)
class Buffer:
    """A program-local array of `size` elements (a materialized tile)."""
    name: str
    dtype: str
    size: int


@dataclass(frozen=True)
class BufRead:
    buffer: Buffer
    index: "Expr"

    @property
    def dtype(self) -> str:
        return self.buffer.dtype


@dataclass(frozen=True)
class MemRead:
    """`*pointer`: a read of global memory through a pointer expression."""
    pointer: "Expr"
    dtype: str


@dataclass(frozen=True)
class Unary:
    op: str
    a: "Expr"
    dtype: str


@dataclass(frozen=True)
class Binary:
    op: str
    a: "Expr"
    b: "Expr"
    dtype: str


@dataclass(frozen=True)
class Call:
    """A math intrinsic or runtime helper; `fn` is a key of the renderer's intrinsic table."""
    fn: str
    args: tuple
    dtype: str


@dataclass(frozen=True)
class Cast:
    """Numeric conversion; `mode` is '' or 'unsigned' (the source is read as unsigned) or
    'to_unsigned' (float to unsigned integer) or a rounding mode ('rtz') for float narrowing."""
    a: "Expr"
    dtype: str
    mode: str = ""


@dataclass(frozen=True)
class Bitcast:
    a: "Expr"
    dtype: str


@dataclass(frozen=True)
class Select:
    cond: "Expr"
    a: "Expr"
    b: "Expr"
    dtype: str


Expr = Const | Var | BufRead | MemRead | Unary | Binary | Call | Cast | Bitcast | Select


# ---- statements --------------------------------------------------------------------------------
@dataclass
class Declare:
    var: Var
    init: Expr | None = None


@dataclass
class Assign:
    var: Var
    value: Expr


@dataclass
class BufWrite:
    buffer: Buffer
    index: Expr
    value: Expr


@dataclass
class MemWrite:
    pointer: Expr
    value: Expr


@dataclass
class If:
    cond: Expr
    then: list
    orelse: list = field(default_factory=list)


@dataclass
class For:
    """`for (var = start; var < stop; var += step)`; `vectorize` asks the C compiler for SIMD
    (iterations are independent), `unroll` for full unrolling of short loops."""
    var: Var
    start: Expr
    stop: Expr
    step: Expr
    body: list
    vectorize: bool = False


@dataclass
class While:
    """`while (1) { body }`, left by `Break`."""
    body: list


@dataclass
class Break:
    pass


@dataclass
class Label:
    """A jump target: unstructured control flow (early returns) lowers to labels and gotos."""
    name: str


@dataclass
class Goto:
    name: str


@dataclass
class Atomic:
    """An atomic read-modify-write (`op` in add fadd max min umax umin and or xor xchg) or compare-and-swap
    (`op` == 'cas', `compare` set); the old value goes to `result` when it is not None."""
    op: str
    pointer: Expr
    value: Expr
    result: Var | None = None
    compare: Expr | None = None


@dataclass
class Print:
    prefix: str
    values: tuple
    hex: bool = False
    indices: tuple = ()


@dataclass
class Assert:
    cond: Expr
    message: str


@dataclass
class Intrinsic:
    """A call of a runtime-header routine on buffers and scalars (e.g. the dot micro-kernel)."""
    name: str
    args: tuple


@dataclass
class Comment:
    text: str


Stmt = (Declare | Assign | BufWrite | MemWrite | If | For | While | Break | Label | Goto | Atomic | Print | Assert
        | Intrinsic | Comment)


@dataclass
class Kernel:
    """One program of a kernel. `params` are the launch arguments (constexprs already folded in)."""
    name: str
    params: list
    buffers: list
    body: list
    program_ids: tuple = ()
    num_programs: tuple = ()
    disjoint_form: bool = False  # the body branches on `tb_disjoint` (see frontends/triton/lower.py)

    def to_text(self) -> str:
        from tilebridge.ir.printer import print_kernel
        return print_kernel(self)
