"""Which form of exp and exp2 a vectorized loop computes: inline code, or a call to a vector function.

tilebridge.h gives each two forms with the same bits: `tb_expf` (branch-free C that gcc vectorizes
inline: the shift-trick 2^n built with integer steps, a select for n = 128 and the two range selects)
and `tb_expf_v`, declared `simd` so that a vectorized loop calls its AVX-512 form (2^n by one
`vscalefps`, no integer steps: 15 vector operations against about 20). Measured in the L2 cache on
this project's hosts (one core, ns per 16 lanes, each form alternated in one binary):

- one vector per trip (an elementwise loop of unknown length, a streamed line): GELU 7.0 inline ->
  5.7 called, exp(x * c) 4.4 -> 3.8, x / (exp(x * c) + 1) 5.4 -> 4.4;
- a constant trip of four vectors, which gcc peels completely and whose copies' dependency chains
  it interleaves (the 64-lane blocks of a blocked reduction): exp stored 3.9 inline -> 4.2 called,
  a sum of exps 4.0 -> 4.5 (the call also spills the accumulators around it).

Kernels, replayed through the launcher's entry: with every vectorized loop calling, GELU over 16M
elements ran 5.43 -> 4.74 ms, while cross-entropy (sums of exps in 64-lane blocks) went 6.2 -> 6.4 ms
and softmax over 128 columns (sums of exps one vector a trip) 5.1 -> 5.4. So a loop keeps the inline
form where its constant trip spans two to four vectors or where it accumulates (a reduction's lanes,
which a call would spill and reload), and a kernel calls only where all its exp loops would
(`calls_vector_forms`): GELU 5.3 -> 4.7 ms, the others keep their code. Scalar code keeps the inline
form (a call per element only adds the call).
"""
from __future__ import annotations

from collections.abc import Iterator

from tilebridge.ir import nodes as n
from tilebridge.ir.passes import nested, own_exprs, subexpressions

VECTOR_FORMS = {"tb_expf": "tb_expf_v", "tb_exp2f": "tb_exp2f_v"}  # inline form -> the `simd` function
VECTOR_BYTES = 64
PEELED_VECTORS = 4  # gcc peels a constant trip of up to this many vectors of an exp-sized body completely


def constant_trip(loop: n.For) -> int | None:
    """The loop's trip count when it is a constant: constant bounds, or `start + k` for a stop."""
    start, stop = loop.start, loop.stop
    if loop.step != n.Const(1, loop.step.dtype):
        return None
    if isinstance(start, n.Const) and isinstance(stop, n.Const):
        return stop.value - start.value
    if isinstance(stop, n.Binary) and stop.op == "add" and stop.a == start and isinstance(stop.b, n.Const):
        return stop.b.value
    return None


def accumulates(body: list) -> bool:
    """Whether `body` (with what is nested in it) writes a buffer that it also reads: a reduction's
    lanes, whose read-modify-write goes through declared values."""
    written, read = set(), set()
    for s in statements(body):
        if isinstance(s, n.BufWrite):
            written.add(s.buffer.name)
        read.update(x.buffer.name for e in own_exprs(s) for x in subexpressions(e) if isinstance(x, n.BufRead))
    return bool(written & read)


def statements(body: list) -> Iterator:
    for s in body:
        yield s
        yield from statements(nested(s))


def loop_calls(loop: n.For, lane_bytes: int = 4) -> bool:
    """Whether the vectorized `loop`, alone, would run faster calling the vector functions: neither a
    constant trip of two to PEELED_VECTORS vectors nor an accumulation."""
    trip = constant_trip(loop)
    lanes = VECTOR_BYTES // lane_bytes
    peeled = trip is not None and lanes < trip <= PEELED_VECTORS * lanes
    return not peeled and not accumulates(loop.body)


def calls_vector_forms(body: list) -> bool:
    """Whether a kernel's vectorized loops call exp's vector functions: where every vectorized loop
    that computes an exp is one that gains from the call. Mixed, the kernel keeps the inline form
    throughout: a call anywhere in the function changes gcc's register allocation for all of it
    (softmax over 128 columns, whose per-row first block would call, spilled 50 more times and ran
    5.1 -> 6.2 ms)."""
    loops = [s for s in statements(body) if isinstance(s, n.For) and s.vectorize and computes_exp(s.body)]
    return bool(loops) and all(loop_calls(loop) for loop in loops)


def computes_exp(body: list) -> bool:
    return any(isinstance(x, n.Unary) and x.op in ("exp", "exp2")
               for s in statements(body) for e in own_exprs(s) for x in subexpressions(e))
