"""Software prefetch for computing passes over data an earlier pass already brought in.

A row kernel often passes over one block several times: a maximum, then the exps (softmax,
cross-entropy). The first pass streams the block in; a later pass that computes (an exp, a division)
finds it in cache, makes no demand misses, and so gives the hardware prefetchers nothing to follow:
memory idles while the core computes, and the next block's first pass waits for all of it. Here
such a pass prefetches the next block while it computes: each contiguous stream it re-reads, one
block ahead (the pass's extent), one prefetch per 64-byte line it advances through.

Measured on this project's hosts (each variant's C compiled from the same kernel, called through the
launcher's entry on the suite's tensors, interleaved in one process): cross-entropy over 1024x32000
fp32 logits (2048-class blocks) 6.42 -> 5.96 ms, softmax over 4096x8192 10.46 -> 9.83 ms. Where the
block is short the prefetches cost more than they save (softmax over 1024 columns 4.46 -> 5.12 ms,
over 128 columns 4.98 -> 5.75), and a single pass (GELU, SwiGLU) already has its demand misses
followed by the hardware (4.15 -> 4.39 ms and 4.85 -> 5.80 with prefetches 32 KiB ahead). So only a
pass that computes, re-reads a stream an earlier statement of its block read, and spans at least
MIN_PASS_BYTES of it (from the constant bound of its loop: a tile's size) prefetches.
"""
from __future__ import annotations

from tilebridge.codegen.width import computes
from tilebridge.ir import nodes as n
from tilebridge.ir.passes import all_exprs, const_bound, contiguous, contiguous_store, subexpressions
from tilebridge.ir.types import BITS

LINE = 64
MIN_PASS_BYTES = 8192
CHUNK_BYTES = 256  # how far each stream advances between two rounds of prefetches in a strip-mined loop
FAR_BLOCKS = 2  # how many blocks ahead a block's storing pass prefetches the streams the block read


def element_bytes(read: n.MemRead) -> int:
    return max(BITS.get(read.dtype, 8) // 8, 1)


def reads(s) -> list[n.MemRead]:
    """Every load of a statement, nested statements included."""
    return [x for e in all_exprs(s) for x in subexpressions(e) if isinstance(x, n.MemRead)]


def base(pointer):
    """The invariant part of `base + index`: what identifies a stream across passes."""
    return pointer.a if isinstance(pointer, n.Binary) and pointer.op == "ptradd" else pointer



def plan(s, earlier: set) -> dict:
    """{stream base: bytes ahead} for the passes of statement `s` of a block, given the bases the
    statements before it read: the streams a loop of at least MIN_PASS_BYTES re-reads."""
    if not isinstance(s, n.For):
        return {}
    extent = const_bound(s.stop)
    if extent is None:
        return {}
    found = {}
    for read in reads(s):
        ahead = extent * element_bytes(read)
        if base(read.pointer) in earlier and ahead >= MIN_PASS_BYTES:
            found[base(read.pointer)] = ahead
    return found


def contiguous_reads(s) -> dict:
    """{stream base: one of its loads} for the loads of `s` that run contiguously along a loop's variable."""
    found = {}
    loops = [s] if isinstance(s, n.For) else []
    while loops:
        loop = loops.pop()
        for t in loop.body:
            loops += [t] if isinstance(t, n.For) else []
            for x in (x for e in all_exprs(t) for x in subexpressions(e)):
                if isinstance(x, n.MemRead) and contiguous(x.pointer, loop.var):
                    found[base(x.pointer)] = x
    return found


def far_plan(s, earlier: dict) -> dict:
    """{stream base: (bytes ahead, element dtype)} for statement `s` of a block, given the contiguous
    streams the statements before it read (`contiguous_reads`): a loop of at least MIN_PASS_BYTES that
    stores contiguously and reads none of them prefetches them FAR_BLOCKS of its extents ahead."""
    if not isinstance(s, n.For) or contiguous_store(s) is None or (extent := const_bound(s.stop)) is None:
        return {}
    mine = {base(r.pointer) for r in reads(s)}
    return {b: (FAR_BLOCKS * extent * element_bytes(read), read.dtype) for b, read in earlier.items()
            if b not in mine and extent * element_bytes(read) >= MIN_PASS_BYTES}


def far_streams(loop: n.For, planned: dict) -> list[tuple[n.MemRead, int]]:
    """(load, bytes ahead) to prefetch from a storing loop: each far-planned stream at the loop's index."""
    index = n.Cast(loop.var, "i64")
    return [(n.MemRead(n.Binary("ptradd", b, index, b.dtype), dtype), ahead) for b, (ahead, dtype) in planned.items()]


def streams(loop: n.For, planned: dict) -> list[tuple[n.MemRead, int]]:
    """(load, bytes ahead) for the contiguous loads (`base[var + offset]`, base and offset invariant)
    of a vectorized loop that computes, whose stream `planned` holds; none for any other loop."""
    if not (loop.vectorize and planned):
        return []
    nodes = [x for s in loop.body for e in all_exprs(s) for x in subexpressions(e)]
    if not any(computes(x) for x in nodes):
        return []
    found: list[tuple[n.MemRead, int]] = []
    for x in nodes:
        if isinstance(x, n.MemRead) and base(x.pointer) in planned and contiguous(x.pointer, loop.var):
            if all(x != r for r, _ in found):
                found.append((x, planned[base(x.pointer)]))
    return found


def lines_for(elements: int, read: n.MemRead) -> int:
    """Lines one stream crosses over `elements` consecutive elements."""
    return max(-(-elements * element_bytes(read) // LINE), 1)


def chunk_elements(found: list[tuple[n.MemRead, int]]) -> int:
    """Elements per round of a strip-mined loop: no stream advances more than CHUNK_BYTES."""
    return max(CHUNK_BYTES // max(element_bytes(r) for r, _ in found), 1)
