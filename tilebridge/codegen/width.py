"""Which SIMD width the C compiler vectorizes a kernel's loops for.

On this project's hosts (AMD Zen 5 virtual machines whose AVX-512 units give half a full-width
core's flops) a loop that only moves data
(loads, adds, compares, selects, stores) keeps more loads in flight with 256-bit vectors, while a loop
that computes (exp, division, other vector math) issues half the instructions with 512-bit ones.
Measured from ctypes, alternated with ATen in the same rounds: the generated row sum of 16384x1024
fp32 ran 6-11% faster at 256 bits (2-8% ahead of ATen's AVX2 loop instead of level with it or
behind); hand-written loops: a vector add 7-11% faster, a layer-norm-like row 4-6%; compiled at 256 bits
throughout, GELU, softmax, SwiGLU and cross-entropy ran 10-25% slower. So a kernel whose vectorized
loops hold no computing operation, and no dot, is compiled for 256-bit vectors; the rest keep the
host's full width. Operations not listed as cheap count as computing, so a new operation keeps the
full width until measured. A NaN-propagating maximum/minimum (ATen's amax) counts as computing: its
three instructions a lane made a 16 MiB row-max 15% faster at 512 bits (0.229 -> 0.200 ms), and at
64 MiB the two widths ran level.
"""
from __future__ import annotations

from tilebridge.ir import nodes as n
from tilebridge.ir.passes import nested, own_exprs, subexpressions
from tilebridge.ir.types import is_float

STREAMING_BITS = 256
PRAGMA = f'#pragma GCC target("prefer-vector-width={STREAMING_BITS}")'

# Float operations cheap enough that a loop of them stays bound by memory (one instruction or a few
# bit operations each); every other float unary or binary operation, and every call but fma, computes.
CHEAP_FLOAT_UNARY = frozenset({"neg", "abs", "floor", "ceil", "trunc", "round", "rint", "nearbyint",
                               "isnan", "isinf", "isfinite", "signbit"})
CHEAP_FLOAT_BINARY = frozenset({"add", "sub", "mul", "fmax", "fmin", "fmax_acc", "fmin_acc",
                                "copysign", "fdim",
                                "lt", "le", "gt", "ge", "eq", "ne", "one", "ord", "uno", "ueq", "ugt", "uge",
                                "ult", "ule", "false", "true"})
CHEAP_CALLS = frozenset({"fma"})
COMPUTING_ROUTINES = ("tb_dot",)  # runtime routines by name prefix: the dot micro-kernels compute; folds and scans move


def computes(e) -> bool:
    """Whether one node (not its operands) is vector arithmetic that costs more than a data movement."""
    match e:
        case n.Unary():
            return is_float(e.a.dtype) and e.op not in CHEAP_FLOAT_UNARY
        case n.Binary():
            return is_float(e.a.dtype) and e.op not in CHEAP_FLOAT_BINARY
        case n.Call():
            return e.fn not in CHEAP_CALLS
    return False


def streams_only(body: list, vectorized: bool = False) -> bool:
    """No statement in a vectorized loop of `body` computes, and nothing calls a computing runtime
    routine (a dot); `vectorized`: `body` is inside such a loop already. Each statement is seen once."""
    for s in body:
        if isinstance(s, n.Intrinsic) and s.name.startswith(COMPUTING_ROUTINES):
            return False
        inside = vectorized or (isinstance(s, n.For) and s.vectorize)
        if inside and any(computes(x) for e in own_exprs(s) for x in subexpressions(e)):
            return False
        if not streams_only(nested(s), inside):
            return False
    return True


def width_pragma(kernel: n.Kernel) -> list[str]:
    """The line that sets the kernel's vector width, placed after the runtime header (whose own
    routines keep the default), or nothing for the host's full width."""
    return [PRAGMA] if streams_only(kernel.body) else []
