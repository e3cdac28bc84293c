"""TileLang tile-level TIR (a `PrimFunc` from `@T.prim_func` or `.get_tir()`) → loop IR (`n.Kernel`).

The tile TIR states what one thread block computes, without GPU thread mapping: that is one tilebridge
program. The mapping is direct:

- `T.Kernel` grid bindings (`blockIdx.x/y/z` loops) are the program ids `tb_pid_x/y/z`; their extents
  are the grid, evaluated on the host at each launch (they may depend on symbolic sizes). A PrimFunc
  with several `T.Kernel` scopes (split + combine, as in flash decoding) lowers to one loop-IR kernel
  per scope, launched in order; `T.alloc_global` scratch buffers between them are allocated on the host
  at each call and passed to every stage as extra pointer parameters.
- buffers in `shared*`, `local.fragment`, `local` and `local.var` scopes are program buffers
  (`n.Buffer`, row-major, static shapes); global buffers are pointer parameters addressed with the
  PrimFunc's strides. Symbolic dimensions and strides become int32 parameters read from the tensors.
- `T.Parallel` loops are vectorizable loops (the innermost); `T.serial`, `T.Pipelined` (stages mean
  nothing within one CPU thread) and `T.unroll` are plain loops.
- tile operators (`tl.tileop.copy/fill/gemm/reduce`) lower in `tileops.py`; scalar expressions in
  `exprs.py`; a block body that reads thread indices (`T.get_thread_binding`) goes through the
  per-thread emulation in `threads.py`. Statement kinds and tile operators are tables; anything else raises
  `UnsupportedConstruct` naming the TileLang construct.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from tilebridge.frontends.tilelang.exprs import STORAGE, ExpressionLowering, UnsupportedConstruct, ir_dtype, storage_dtype
from tilebridge.frontends.tilelang.threads import PRIVATE_SCOPES, ThreadLowering, thread_extents
from tilebridge.frontends.tilelang.tileops import ATOMIC_RETURNING, TILE_OPS, TileOpLowering
from tilebridge.ir import nodes as n
from tilebridge.ir.passes import optimize

I32, I64 = "i32", "i64"
LOCAL_SCOPES = ("shared", "shared.dyn", "local", "local.fragment", "local.var", "local.reducer")
GRID_AXES = {"blockIdx.x": 0, "blockIdx.y": 1, "blockIdx.z": 2}


@dataclass
class GlobalBuffer:
    """A kernel argument in global memory: a pointer parameter and its shape and strides as IR expressions."""
    pointer: n.Var
    dtype: str
    shape: list
    strides: list


@dataclass
class LocalBuffer:
    """A program buffer with its static TileLang shape (indexed row-major); a private one holds one copy
    per emulated thread, the copy of thread t at t * size."""
    buffer: n.Buffer
    shape: tuple
    private: bool = False


@dataclass
class Signature:
    """What the host needs to launch the kernel: which PrimFunc parameter is a tensor or a scalar,
    where each symbolic size comes from, and the grid as TIR expressions."""
    tensors: dict = field(default_factory=dict)  # param index → (tvm dtype, shape exprs, stride exprs or None)
    scalars: dict = field(default_factory=dict)  # param index → IR dtype
    symbols: list = field(default_factory=list)  # (tvm Var, param index, "shape"|"stride", dim)
    grids: list = field(default_factory=list)  # per launch stage: [x, y, z] TIR extents (None: 1)
    scratch: list = field(default_factory=list)  # T.alloc_global: (tvm dtype, shape exprs), after the symbols


class Lowering(ExpressionLowering, TileOpLowering, ThreadLowering):
    def __init__(self, func) -> None:
        self.func = func
        self.vars: dict = {}
        self.globals: dict = {}
        self.locals: dict = {}
        self.threads: set = set()  # thread-index variables (T.get_thread_binding)
        self.thread_dims: dict = {}  # thread-index variable → its dimension (0 x, 1 y, 2 z)
        self.thread_extents = [1, 1, 1]
        self.private: set = set()  # data vars of per-thread buffers (while emulating threads)
        self.private_lets: dict = {}  # thread-dependent let variable → its per-thread IR buffer
        self.thread_id: n.Expr | None = None  # the linear thread id inside a thread region
        self.guards: list = []  # (per-thread predicate buffer, negated) around the current regions
        self.reducer_ops: dict = {}  # data var of a T.alloc_reducer buffer → its combine ("sum", "max", ...)
        self.buffers: list[n.Buffer] = []
        self.params: list[n.Var] = []
        self.stmts: list = []
        self.counter = 0
        self.signature = Signature()
        self.pids = tuple(n.Var(f"tb_pid_{a}", I32) for a in "xyz")
        self.stages: list[tuple[list, list]] = []  # (statements, buffers) of each T.Kernel scope
        self.grid: list | None = None  # the grid of the T.Kernel scope being lowered; None outside

    # ---- naming and emission ----
    def fresh(self, stem: str) -> str:
        self.counter += 1
        stem = re.sub(r"[^A-Za-z0-9_]", "_", stem) or "v"
        return f"{'v' if stem[0].isdigit() else ''}{stem}_{self.counter}"

    def emit(self, stmt) -> None:
        self.stmts.append(stmt)

    def nested(self, fn) -> list:
        """The statements that `fn()` emits, collected into their own list (a loop or branch body)."""
        outer, self.stmts = self.stmts, []
        try:
            fn()
            return self.stmts
        finally:
            self.stmts = outer

    def unbound_message(self, var) -> str:
        if var in self.threads:
            return (f"thread index {var.name!r} (T.get_thread_binding) is used where tilebridge's per-thread emulation "
                    "does not reach (outside the thread block's body)")
        return f"TIR variable {var.name!r} is not bound in this kernel"

    # ---- parameters ----
    def bind_params(self) -> None:
        """Pointers and scalars in the PrimFunc's order, then one int32 per symbolic size or stride."""
        symbolic, pointers = [], []
        for index, param in enumerate(self.func.params):
            buffer = self.func.buffer_map.get(param)
            if buffer is None:
                dtype = ir_dtype(param.dtype)
                var = n.Var(self.fresh(param.name), dtype)
                self.vars[param] = var
                self.params.append(var)
                self.signature.scalars[index] = dtype
                continue
            pointer = n.Var(self.fresh(buffer.name), f"ptr<{storage_dtype(buffer.dtype)}>")
            self.params.append(pointer)
            pointers.append((buffer, pointer))
            strides = list(buffer.strides) if len(buffer.strides) else None
            self.signature.tensors[index] = (str(buffer.dtype), list(buffer.shape), strides)
            for kind, dims in (("shape", buffer.shape), ("stride", buffer.strides)):
                for dim, extent in enumerate(dims):
                    if type(extent).__name__ in ("Var", "SizeVar") and extent not in self.vars:
                        var = n.Var(self.fresh(extent.name), I32)
                        self.vars[extent] = var
                        symbolic.append(var)
                        self.signature.symbols.append((extent, index, kind, dim))
        self.params += symbolic
        for buffer, pointer in pointers:
            self.globals[buffer.data] = self.global_buffer(buffer, pointer)

    def global_buffer(self, buffer, pointer: n.Var) -> GlobalBuffer:
        shape = [self.expr(d) for d in buffer.shape]
        if len(buffer.strides):
            strides = [self.expr(s) for s in buffer.strides]
        else:  # compact row-major
            strides, running = [], n.Const(1, I32)
            for d in reversed(shape):
                strides.insert(0, running)
                running = n.Binary("mul", running, d, I32)
        return GlobalBuffer(pointer, pointer.dtype[4:-1], shape, strides)

    # ---- buffers ----
    def local_buffer(self, buffer) -> LocalBuffer:
        scope = buffer.scope()
        if scope not in LOCAL_SCOPES:
            raise UnsupportedConstruct(f"buffer {buffer.name!r} in scope {scope!r} is not supported by tilebridge's CPU backend")
        shape = []
        for d in buffer.shape:
            if type(d).__name__ != "IntImm":
                raise UnsupportedConstruct(f"buffer {buffer.name!r} has a symbolic shape {list(buffer.shape)}; "
                                           "tile buffers need static shapes")
            shape.append(int(d.value))
        size = 1
        for d in shape:
            size *= d
        private = self.thread_count() > 1 and scope in PRIVATE_SCOPES and bool(self.thread_dims)
        copies = self.thread_count() if private else 1
        local = LocalBuffer(n.Buffer(self.fresh(buffer.name), storage_dtype(buffer.dtype), max(size, 1) * copies),
                            tuple(shape), private)
        if private:
            self.private.add(buffer.data)
        self.buffers.append(local.buffer)
        self.locals[buffer.data] = local
        return local

    def lookup(self, buffer):
        found = self.locals.get(buffer.data) or self.globals.get(buffer.data)
        if found is None:
            raise UnsupportedConstruct(f"buffer {buffer.name!r} (scope {buffer.scope()!r}) is not allocated in this kernel")
        return found

    def local_index(self, local: LocalBuffer, indices: list) -> n.Expr:
        index = None
        for d, i in zip(local.shape, indices):
            i = n.Cast(i, I32) if i.dtype != I32 else i
            index = i if index is None else n.Binary("add", n.Binary("mul", index, n.Const(d, I32), I32), i, I32)
        index = index if index is not None else n.Const(0, I32)
        if local.private:
            if self.thread_id is None:
                raise UnsupportedConstruct(f"per-thread buffer {local.buffer.name!r} is used at block level")
            size = local.buffer.size // self.thread_count()
            index = n.Binary("add", n.Binary("mul", self.thread_id, n.Const(size, I32), I32), index, I32)
        return index

    def address(self, g: GlobalBuffer, indices: list) -> n.Expr:
        offset = None
        for stride, i in zip(g.strides, indices):
            term = n.Binary("mul", n.Cast(i, I64), n.Cast(stride, I64), I64)
            offset = term if offset is None else n.Binary("add", offset, term, I64)
        return n.Binary("ptradd", g.pointer, offset if offset is not None else n.Const(0, I64), g.pointer.dtype)

    def load(self, buffer, indices: list) -> n.Expr:
        """A read of `buffer` at IR index expressions."""
        target = self.lookup(buffer)
        if isinstance(target, LocalBuffer):
            value = n.BufRead(target.buffer, self.local_index(target, indices))
        else:
            value = n.MemRead(self.address(target, indices), target.dtype)
        if str(buffer.dtype) in STORAGE:  # unsigned: zero-extended into its value type
            value = n.Cast(value, ir_dtype(buffer.dtype), "unsigned")
        return value

    def store(self, buffer, indices: list, value: n.Expr):
        target = self.lookup(buffer)
        dtype = target.buffer.dtype if isinstance(target, LocalBuffer) else target.dtype
        value = value if value.dtype == dtype else n.Cast(value, dtype)
        if isinstance(target, LocalBuffer):
            return n.BufWrite(target.buffer, self.local_index(target, indices), value)
        return n.MemWrite(self.address(target, indices), value)

    def read(self, buffer, indices: list) -> n.Expr:
        if any(type(i).__name__ in ("Ramp", "Broadcast") for i in indices):
            raise UnsupportedConstruct(f"vector access {buffer.name}[{', '.join(map(str, indices))}] is not supported")
        return self.load(buffer, [self.expr(i) for i in indices])

    # ---- statements ----
    def stmt(self, s) -> None:
        handler = STATEMENTS.get(type(s).__name__)
        if handler is None:
            raise UnsupportedConstruct(f"TIR statement {type(s).__name__} is not supported by tilebridge's CPU backend:\n{s}")
        handler(self, s)

    def stmt_for(self, s) -> None:
        kind = int(s.kind)
        if kind == 4:  # thread binding
            self.bind_thread(s)
            return
        var = n.Var(self.fresh(s.loop_var.name), ir_dtype(s.loop_var.dtype))
        self.vars[s.loop_var] = var
        start, extent = self.expr(s.min), self.expr(s.extent)
        stop = extent if isinstance(start, n.Const) and start.value == 0 else n.Binary("add", start, extent, var.dtype)
        body = self.nested(lambda: self.stmt(s.body))
        vectorize = kind in (1, 2) and not any(isinstance(b, (n.For, n.While)) for b in walk(body))
        self.emit(n.For(var, start, stop, n.Const(1, var.dtype), body, vectorize=vectorize))

    def bind_thread(self, s) -> None:
        tag = str(s.thread_binding.thread_tag)
        if tag not in GRID_AXES:
            self.threads.add(s.loop_var)
            raise UnsupportedConstruct(f"thread binding {tag!r} (T.get_thread_binding) is not supported by "
                                       "tilebridge's CPU backend")
        if self.grid is None:  # the outermost grid binding opens a T.Kernel scope: one launch stage
            self.kernel_scope(s)
            return
        axis = GRID_AXES[tag]
        if self.grid[axis] is not None:
            raise UnsupportedConstruct(f"grid axis {tag} is bound twice")
        self.grid[axis] = s.extent
        self.vars[s.loop_var] = self.pids[axis]
        self.stmt(s.body)

    def kernel_scope(self, s) -> None:
        """Lower one T.Kernel scope into its own statements and buffers: a launch stage."""
        outer = self.stmts, self.buffers
        self.stmts, self.buffers, self.grid = [], [], [None, None, None]
        try:
            self.bind_thread(s)
            self.stages.append((self.stmts, self.buffers))
            self.signature.grids.append(self.grid)
        finally:
            (self.stmts, self.buffers), self.grid = outer, None

    def scratch_buffer(self, buffer) -> None:
        """`T.alloc_global`: a tensor the host allocates at each call, passed as one more pointer."""
        pointer = n.Var(self.fresh(buffer.name), f"ptr<{storage_dtype(buffer.dtype)}>")
        self.params.append(pointer)
        self.signature.scratch.append((str(buffer.dtype), list(buffer.shape)))
        self.globals[buffer.data] = self.global_buffer(buffer, pointer)

    def stmt_bind(self, s) -> None:
        value = s.value
        if type(value).__name__ == "Call" and getattr(value.op, "name", "") in ("tl.launch_thread_idx", "tirx.launch_thread_idx"):
            self.threads.add(s.var)
            self.thread_dims[s.var] = int(value.args[0].value)
            return
        var = n.Var(self.fresh(s.var.name), ir_dtype(s.var.dtype))
        self.emit(n.Declare(var, self.expr(value)))
        self.vars[s.var] = var
        if hasattr(s, "body"):
            self.stmt(s.body)

    def stmt_block(self, s) -> None:
        block = s.block if hasattr(s, "block") else s
        if len(getattr(s, "iter_values", ())) or len(block.iter_vars):
            raise UnsupportedConstruct("TIR blocks with iteration variables are not supported by tilebridge's CPU backend")
        for data, info in (block.annotations or {}).get("reducer_info_v2", {}).items():
            self.reducer_ops[data] = str(info["op"])
        for buffer in block.alloc_buffers:
            if buffer.scope() == "global":
                if self.grid is not None:
                    raise UnsupportedConstruct(f"T.alloc_global {buffer.name!r} inside T.Kernel: allocate it before")
                self.scratch_buffer(buffer)
            else:
                self.local_buffer(buffer)
        for region in block.match_buffers:
            raise UnsupportedConstruct(f"match_buffer {region.buffer.name!r} inside a kernel is not supported")
        if "tl.launch_threads" in (block.annotations or {}) or str(block.name_hint) == "tilelang_root":
            self.thread_extents = thread_extents(block) if self.uses_threads(block.body) else [1, 1, 1]
            if self.thread_count() > 1:
                for buffer in block.alloc_buffers:  # allocated again, now once per thread where private
                    if buffer.scope() in PRIVATE_SCOPES:
                        self.buffers.remove(self.locals.pop(buffer.data).buffer)
                        self.local_buffer(buffer)
                self.simt_body(block.body)
                self.thread_extents = [1, 1, 1]
                return
        self.stmt(block.body)

    def stmt_alloc(self, s) -> None:
        self.local_buffer(s.buffer)
        if hasattr(s, "body"):
            self.stmt(s.body)

    def stmt_decl(self, s) -> None:
        if s.buffer.data not in self.locals and s.buffer.data not in self.globals:
            self.local_buffer(s.buffer)
        if hasattr(s, "body"):
            self.stmt(s.body)

    def stmt_store(self, s) -> None:
        if any(type(i).__name__ in ("Ramp", "Broadcast") for i in s.indices):
            raise UnsupportedConstruct(f"vector store to {s.buffer.name} is not supported")
        self.emit(self.store(s.buffer, [self.expr(i) for i in s.indices], self.expr(s.value)))

    def stmt_if(self, s) -> None:
        cond = self.expr(s.condition)
        then = self.nested(lambda: self.stmt(s.then_case))
        orelse = self.nested(lambda: self.stmt(s.else_case)) if s.else_case is not None else []
        self.emit(n.If(cond, then, orelse))

    def stmt_while(self, s) -> None:
        def body():
            self.emit(n.If(n.Unary("not", self.expr(s.condition), "i1"), [n.Break()]))
            self.stmt(s.body)
        self.emit(n.While(self.nested(body)))

    def stmt_evaluate(self, s) -> None:
        value = s.value
        if type(value).__name__ in ("IntImm",):
            return
        if type(value).__name__ != "Call":
            self.expr(value)
            return
        name = getattr(value.op, "name", str(value.op))
        handler = TILE_OPS.get(name)
        if handler is None and name in ATOMIC_RETURNING:  # the previous value is not used
            handler = lambda self, call: self.expr(call)  # noqa: E731
        if handler is None:
            raise UnsupportedConstruct(f"TileLang operation {name!r} ({construct_name(name)}) is not supported by "
                                       f"tilebridge's CPU backend:\n  {value}")
        handler(self, value)

    def stmt_assert(self, s) -> None:
        self.emit(n.Assert(self.expr(s.condition), str(s.message.value if hasattr(s.message, "value") else s.message)))
        if hasattr(s, "body"):
            self.stmt(s.body)

    # ---- the kernel ----
    def lower(self) -> list[n.Kernel]:
        self.bind_params()
        self.stmt(self.func.body)
        if any(not isinstance(s, n.Declare) for s in self.stmts):
            raise UnsupportedConstruct("statements outside T.Kernel (host code in the PrimFunc) are not supported")
        if not self.stages:
            raise UnsupportedConstruct("the PrimFunc has no T.Kernel scope")
        name = "tl_" + re.sub(r"[^A-Za-z0-9_]", "_", str(self.func.attrs["global_symbol"]) if self.func.attrs and
                              "global_symbol" in self.func.attrs else "kernel")
        host = self.stmts  # declarations of values the stages share (host-level lets)
        return [n.Kernel(name if i == 0 else f"{name}_stage{i}", self.params, buffers + self.buffers, host + stmts)
                for i, (stmts, buffers) in enumerate(self.stages)]


def construct_name(op: str) -> str:
    """How a TIR op name reads in a kernel: `tl.tileop.atomic_add` → `T.atomic_add`."""
    return "T." + op.rsplit(".", 1)[-1]


def walk(body: list):
    for s in body:
        yield s
        for child in ("body", "then", "orelse"):
            yield from walk(getattr(s, child, None) or [])


STATEMENTS = {
    "SeqStmt": lambda self, s: [self.stmt(x) for x in s.seq],
    "For": Lowering.stmt_for, "Bind": Lowering.stmt_bind, "LetStmt": Lowering.stmt_bind,
    "SBlockRealize": Lowering.stmt_block, "SBlock": Lowering.stmt_block,
    "AllocBuffer": Lowering.stmt_alloc, "DeclBuffer": Lowering.stmt_decl,
    "AttrStmt": lambda self, s: self.stmt(s.body),  # pragmas and hints: no meaning for the CPU program
    "BufferStore": Lowering.stmt_store, "IfThenElse": Lowering.stmt_if, "While": Lowering.stmt_while,
    "Evaluate": Lowering.stmt_evaluate, "AssertStmt": Lowering.stmt_assert,
}


def lower_prim_func(func) -> tuple[list[n.Kernel], Signature]:
    """Lower a tile-level PrimFunc to optimized loop-IR kernels (one per T.Kernel scope, launched in
    order) and their launch signature."""
    lowering = Lowering(func)
    kernels = [optimize(kernel) for kernel in lowering.lower()]
    return kernels, lowering.signature
