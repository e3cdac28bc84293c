"""Scans and orderings along one dim: cumsum, cumprod, sort (argsort reaches it), topk.

The input is viewed as (M, N, K) with the scanned or sorted dim as N (`reduction.as_mnk`). A scan
program owns one m and a block of K lanes and walks N in blocks, carrying the running total (fp32 for
floats, int64 for integers, as ATen's accumulator). Sorting is by rank: each element counts the
elements that sort before it (smaller, or equal and earlier, with NaN above everything as ATen has it),
which is a stable sort, and is stored at that rank (quadratic, so long lines stay with ATen). A topk
of a few elements goes by repeated selection instead, O(k N): each step picks the best element that
comes after the previous pick. ATen's unstable sort and its topk order ties in their own way, so when
ties would show in the result of those, the wrapper declines.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import bind, out_argument
from tilebridge.ops.reduction import _blocks, _mergeable, as_mnk, row_block
from tilebridge.ops.registry import BOOL, FLOATS, INTEGERS, Decline, claim, register
from tilebridge.ops.strided import MAX_ELEMENTS, has_internal_overlap

CATEGORY = "scans"
SORT_BLOCK = 64
MAX_SORT_WORK = 2**28  # rows * N * N comparisons: beyond this the quadratic rank sort stays with ATen
SELECT_MAX_K = 16  # topk of at most this many goes by repeated selection, O(k N)


@triton.jit
def _multiply(a, b):
    return a * b


# Strides along n and k stay specialized: a unit one (a row scanned where it lies) makes loads and stores contiguous.
@launchable
@triton.jit(do_not_specialize=["N", "K", "sm", "om", "is_prod"])
def scan_kernel(x_ptr, out_ptr, N, K, sm, sn, sk, om, on, ok, is_prod, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_K: tl.constexpr):
    """out[m, n, k] = sum (is_prod: product) of x[m, :n + 1, k]; in place is safe (each block is read before it is
    written). is_prod is a run-time flag: one compile serves both ops."""
    m = tl.program_id(0).to(tl.int64)
    ks = (tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)).to(tl.int64)
    k_in = ks < K
    carry = tl.zeros([BLOCK_K], ACC) + is_prod
    for start in range(0, N, BLOCK_N):
        ns = (start + tl.arange(0, BLOCK_N)).to(tl.int64)
        inside = (ns < N)[:, None] & k_in[None, :]
        x = tl.load(x_ptr + m * sm + ns[:, None] * sn + ks[None, :] * sk, mask=inside).to(ACC)
        if is_prod:
            x = tl.where(inside, x, 1)
            running = tl.cumprod(x, 0) * carry[None, :]
            carry = carry * tl.reduce(x, 0, _multiply)
        else:
            x = tl.where(inside, x, 0)
            running = tl.cumsum(x, 0) + carry[None, :]
            carry = carry + tl.sum(x, 0)
        tl.store(out_ptr + m * om + ns[:, None] * on + ks[None, :] * ok, running.to(out_ptr.dtype.element_ty), mask=inside)


@launchable
@triton.jit(do_not_specialize=["N", "K", "sm", "sn", "sk", "limit", "vm", "vn", "vk", "im", "jn", "ik", "descending"])
def rank_sort_kernel(x_ptr, values_ptr, indices_ptr, ties_ptr, N, K, sm, sn, sk, limit, vm, vn, vk, im, jn, ik, descending,
                     KEY: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """Elements of rank < limit of line (m, k) go to position rank; ties[program] tells if any of them has an equal."""
    m = tl.program_id(0).to(tl.int64)
    k = tl.program_id(1).to(tl.int64)
    i = tl.program_id(2) * BLOCK_I + tl.arange(0, BLOCK_I)
    i_in = i < N
    base = x_ptr + m * sm + k * sk
    raw = tl.load(base + i.to(tl.int64) * sn, mask=i_in, other=0)
    b = raw.to(KEY)[:, None]
    b_nan = b != b
    rank = tl.zeros([BLOCK_I], tl.int32)
    ties = tl.zeros([BLOCK_I], tl.int32)
    for start in range(0, N, BLOCK_J):
        j = start + tl.arange(0, BLOCK_J)
        a = tl.load(base + j.to(tl.int64) * sn, mask=j < N, other=0).to(KEY)[None, :]
        a_nan = a != a
        same = (a == b) | (a_nan & b_nan)
        greater = (a > b) | (a_nan & ~b_nan)
        less = (a < b) | (b_nan & ~a_nan)
        before = tl.where(descending != 0, greater, less)
        valid = (j < N)[None, :]
        earlier = j[None, :] < i[:, None]
        rank += tl.sum((valid & (before | (same & earlier))).to(tl.int32), 1)
        ties += tl.sum((valid & same & (j[None, :] != i[:, None])).to(tl.int32), 1)
    keep = i_in & (rank < limit)
    position = rank.to(tl.int64)
    tl.store(values_ptr + m * vm + k * vk + position * vn, raw, mask=keep)
    tl.store(indices_ptr + m * im + k * ik + position * jn, i.to(tl.int64), mask=keep)
    program = (m * K + k) * tl.num_programs(2) + tl.program_id(2)
    tl.store(ties_ptr + program, tl.max(tl.where(keep & (ties > 0), 1, 0), 0))


@triton.jit
def _pick_larger(a, b):
    """The larger of two keys, NaN above everything (a reduction combiner)."""
    return tl.where((a > b) | (a != a), a, b)


@triton.jit
def _pick_smaller(a, b):
    return tl.where((a < b) | (b != b), a, b)


@launchable
@triton.jit(do_not_specialize=["N", "K", "sm", "limit", "steps", "vm", "vn", "vk", "im", "jn", "ik"])
def select_kernel(x_ptr, values_ptr, indices_ptr, ties_ptr, N, K, sm, sn, sk, limit, steps, vm, vn, vk, im, jn, ik,
                  LARGEST: tl.constexpr, KEY: tl.constexpr, BLOCK: tl.constexpr):
    """topk for a small k in O(k N): each step is one pass that picks the best element ordered after the previous
    pick (value, then index). It takes one pick more than k where it can: equal neighbours among the picks are
    exactly the ties that would show ATen's own order, reported in ties[line]. The line's stride stays
    specialized (a unit stride reads each pass contiguously) and so does LARGEST (no branch per block)."""
    m = tl.program_id(0).to(tl.int64)
    k = tl.program_id(1).to(tl.int64)
    base = x_ptr + m * sm + k * sk
    if KEY == tl.float32:
        worst = -float("inf") if LARGEST else float("nan")
    else:
        worst = tl.full([], -9223372036854775807 - 1 if LARGEST else 9223372036854775807, tl.int64)
    previous = tl.load(base).to(KEY)  # step 0 takes every element as a candidate
    previous_index = -1
    tied = 0
    for step in range(0, steps):
        best = tl.full([BLOCK], 0, KEY) + worst
        best_index = tl.full([BLOCK], N, tl.int32)
        for start in range(0, N, BLOCK):
            i = start + tl.arange(0, BLOCK)
            x = tl.load(base + i.to(tl.int64) * sn, mask=i < N, other=0).to(KEY)
            candidate = (_ordered_after(x, i, previous, previous_index, LARGEST) | (step == 0)) & (i < N)
            x_nan = x != x
            best_nan = best != best
            if LARGEST:
                better = (x > best) | (x_nan & ~best_nan)
            else:
                better = (x < best) | (best_nan & ~x_nan)
            take = candidate & (better | (best_index == N))  # in a lane, later equal values never replace earlier
            best = tl.where(take, x, best)
            best_index = tl.where(take, i, best_index)
        if LARGEST:
            winner = tl.reduce(best, 0, _pick_larger)
        else:
            winner = tl.reduce(best, 0, _pick_smaller)
        same = (best == winner) | ((best != best) & (winner != winner))
        index = tl.min(tl.where(same & (best_index < N), best_index, N), 0)
        if step > 0:
            tied = tl.maximum(tied, ((winner == previous) | ((winner != winner) & (previous != previous))).to(tl.int32))
        previous = winner
        previous_index = index
        if step < limit:
            tl.store(values_ptr + m * vm + k * vk + step * vn, tl.load(base + index.to(tl.int64) * sn))
            tl.store(indices_ptr + m * im + k * ik + step * jn, index.to(tl.int64))
    tl.store(ties_ptr + m * K + k, tied)


@triton.jit
def _ordered_after(x, i, previous, previous_index, LARGEST: tl.constexpr):
    """Whether (x, i) comes after (previous, previous_index) in topk's order: value first (NaN the largest), then index."""
    x_nan = x != x
    p_nan = previous != previous
    same = (x == previous) | (x_nan & p_nan)
    if LARGEST:
        beyond = (x < previous) | (p_nan & ~x_nan)
    else:
        beyond = (x > previous) | (x_nan & ~p_nan)
    return beyond | (same & (i > previous_index))


# --- host side ------------------------------------------------------------------------------------------------

def _schema(overload: str) -> torch.FunctionSchema:
    packet, _, name = overload.partition(".")
    return getattr(getattr(torch.ops.aten, packet), name or "default")._schema


def _dim(x: torch.Tensor, dim: int) -> int:
    rank = max(x.dim(), 1)
    if not -rank <= dim < rank:
        raise Decline("dim out of range: ATen's error")
    return dim % rank


def mnk_strides(t: torch.Tensor, dim: int) -> tuple[int, int, int]:
    """(m, n, k) strides of `t` seen as (before dim, dim, after dim) without a copy; declines if there is none."""
    if t.dim() == 0:
        return 0, 0, 0
    sizes, strides = list(t.shape), list(t.stride())
    steps = []
    for a, b in ((0, dim), (dim, dim + 1), (dim + 1, t.dim())):
        if not _mergeable(sizes[a:b], strides[a:b]):
            raise Decline("output layout that does not merge: ATen's")
        inner = [s for n, s in zip(sizes[a:b], strides[a:b]) if n != 1]
        steps.append(inner[-1] if inner else 0)
    return steps[0], steps[1], steps[2]


def _target(out: torch.Tensor, dim: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Where a kernel writes `out` and with which (m, n, k) strides: `out` itself, or a contiguous
    stand-in copied into it afterwards when its layout does not merge into three dims."""
    try:
        return out, mnk_strides(out, dim)
    except Decline:
        stand_in = torch.empty(out.shape, dtype=out.dtype)
        return stand_in, mnk_strides(stand_in, dim)


def _writable(given: torch.Tensor | None, shape: Any, dtype: torch.dtype) -> torch.Tensor:
    if given is None:
        return torch.empty(shape, dtype=dtype)
    if given.shape != torch.Size(shape) or given.dtype != dtype or has_internal_overlap(given):
        raise Decline("out= needs a resize or a cast: ATen's")
    return given


def _scan(overload: str, op: str, inplace: bool):
    schema = _schema(overload)
    out_name = out_argument(schema)

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        x, requested = bound["self"], bound.get("dtype")
        claim(x.dtype, FLOATS | INTEGERS | BOOL)
        if x.numel() > MAX_ELEMENTS or x.layout != torch.strided:
            raise Decline("size or layout")
        given = x if inplace else bound.get(out_name) if out_name else None
        default = torch.int64 if not x.dtype.is_floating_point else x.dtype
        result = requested or (given.dtype if given is not None else default)
        floating = x.dtype.is_floating_point
        if result == torch.bool or result != x.dtype and (floating or result.is_floating_point or result not in INTEGERS):
            raise Decline("a cast before the scan: ATen's")
        dim = _dim(x, bound["dim"])
        out = _writable(given, x.shape, result)
        if x.numel() == 0:
            return out
        view, M, N, K, (sm, sn, sk) = as_mnk(x, [dim])
        target, (om, on, ok) = _target(out, dim)
        block_n, single = row_block(N, K, 0)
        if single:  # a short last dim: one program scans one row in one block, where it lies
            block_k = 1
        else:
            if K == 1 and M > 1:  # scanning a long last dim: rows become the lanes, a program scans 32 rows at once
                M, K, sm, sk, om, ok = 1, M, 0, sm, 0, om
            block_n, block_k = _blocks(K)
        scan_kernel[(M, cdiv(K, block_k))](view, target, N, K, sm, sn, sk, om, on, ok, int(op == "prod"),
                                                  ACC=tl.float32 if floating else tl.int64, BLOCK_N=block_n,
                                                  BLOCK_K=block_k)
        if target is not out:
            out.copy_(target)
        return out

    return wrapper


def _rank_sort(x: torch.Tensor, dim: int, limit: int, descending: bool, values: torch.Tensor,
               indices: torch.Tensor) -> bool:
    """Write the `limit` first elements of x's stable order along dim; True if ties show among them."""
    view, M, N, K, (sm, sn, sk) = as_mnk(x, [dim])
    if M * K * N * N > MAX_SORT_WORK:
        raise Decline("a long sort: ATen's")
    value_target, (vm, vn, vk) = _target(values, dim)
    index_target, (im, jn, ik) = _target(indices, dim)
    blocks = cdiv(N, SORT_BLOCK)
    ties = torch.empty(M * K * blocks, dtype=torch.int32)
    key = tl.float32 if x.dtype.is_floating_point else tl.int64
    rank_sort_kernel[(M, K, blocks)](view, value_target, index_target, ties, N, K, sm, sn, sk, limit, vm, vn, vk, im, jn,
                                     ik, int(descending), KEY=key, BLOCK_I=SORT_BLOCK, BLOCK_J=SORT_BLOCK)
    for target, out in ((value_target, values), (index_target, indices)):
        if target is not out:
            out.copy_(target)
    return bool(ties.any())


def _select(x: torch.Tensor, dim: int, limit: int, largest: bool, values: torch.Tensor, indices: torch.Tensor) -> bool:
    """topk by repeated selection into values/indices; True if ties among the picks (or at the k-th) would show."""
    view, M, N, K, (sm, sn, sk) = as_mnk(x, [dim])
    value_target, (vm, vn, vk) = _target(values, dim)
    index_target, (im, jn, ik) = _target(indices, dim)
    ties = torch.empty(M * K, dtype=torch.int32)
    key = tl.float32 if x.dtype.is_floating_point else tl.int64
    select_kernel[(M, K)](view, value_target, index_target, ties, N, K, sm, sn, sk, limit, min(limit + 1, N), vm, vn, vk,
                          im, jn, ik, LARGEST=largest, KEY=key, BLOCK=256)
    for target, out in ((value_target, values), (index_target, indices)):
        if target is not out:
            out.copy_(target)
    return bool(ties.any())


def _outputs(bound: dict, names: list[str], shape: Any, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    given = [bound.get(name) for name in names] if names else [None, None]
    return _writable(given[0], shape, dtype), _writable(given[1], shape, torch.int64)


def _sort(overload: str):
    schema = _schema(overload)
    names = [a.name for a in schema.arguments if a.kwarg_only and a.alias_info is not None and a.alias_info.is_write]

    def wrapper(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        bound = bind(schema, args, kwargs)
        x = bound["self"]
        claim(x.dtype, FLOATS | INTEGERS | BOOL)
        dim = _dim(x, bound.get("dim", -1))
        values, indices = _outputs(bound, names, x.shape, x.dtype)
        if x.numel() == 0:
            return values, indices
        size = x.shape[dim] if x.dim() else 1
        ties = _rank_sort(x, dim, size, bool(bound.get("descending")), values, indices)
        if ties and not bound.get("stable"):
            raise Decline("ties in an unstable sort: ATen's order")
        return values, indices

    return wrapper


def _topk(overload: str):
    schema = _schema(overload)
    names = [a.name for a in schema.arguments if a.kwarg_only and a.alias_info is not None and a.alias_info.is_write]

    def wrapper(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        bound = bind(schema, args, kwargs)
        x, k = bound["self"], int(bound["k"])
        claim(x.dtype, FLOATS | INTEGERS)
        dim = _dim(x, bound.get("dim", -1))
        size = x.shape[dim] if x.dim() else 1
        if not 0 <= k <= size:
            raise Decline("k out of range: ATen's error")
        if not bound.get("sorted", True) and k > 1:
            raise Decline("unsorted topk: ATen's order")
        shape = list(x.shape)
        if shape:
            shape[dim] = k
        values, indices = _outputs(bound, names, shape, x.dtype)
        if values.numel() == 0:
            return values, indices
        if k <= SELECT_MAX_K:
            ties = _select(x, dim, k, bool(bound.get("largest", True)), values, indices)
        else:
            ties = _rank_sort(x, dim, k, bool(bound.get("largest", True)), values, indices)
        if ties:
            raise Decline("ties among the top k: ATen's order")
        return values, indices

    return wrapper


for _overload, _op, _inplace in [("cumsum", "sum", False), ("cumsum.out", "sum", False), ("cumsum_", "sum", True),
                                 ("cumprod", "prod", False), ("cumprod.out", "prod", False), ("cumprod_", "prod", True)]:
    register(_overload, _scan(_overload, _op, _inplace), FLOATS | INTEGERS | BOOL, CATEGORY)
for _overload in ("sort.stable", "sort.values_stable"):
    register(_overload, _sort(_overload), FLOATS | INTEGERS | BOOL, CATEGORY)
for _overload in ("topk", "topk.values"):
    register(_overload, _topk(_overload), FLOATS | INTEGERS, CATEGORY)
