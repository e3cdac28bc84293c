"""Reductions along any dims: sum, mean, prod, amax/amin, var/std, norm, logsumexp, all/any, argmax/argmin, max/min.

The host views the input as (M, N, K) -- kept dims before, reduced dims, kept dims after -- without a
copy where the strides allow it (otherwise the kept dims go first and it is made contiguous), and one
program reduces N for one m and a block of K. Masked lanes hold a neutral filler: 0 or 1 for sums and
products, and the first element of the reduced axis for max/min-like ops (it is in the set, so it
never changes the answer, whatever the dtype). Everything accumulates in fp32 (or int64). A reduced
axis that is contiguous and at most `ONE_BLOCK_MAX` long (the last dim of most real tensors) is one
load, reduced where it lies as a hand-written row kernel would; a running tile carried through a loop
made a row sum of 4096x1024 3x slower than that.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from tilebridge.grid import cdiv, next_power_of_2
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import bind, out_argument
from tilebridge.ops.registry import BOOL, FLOATS, INTEGERS, Decline, register
from tilebridge.ops.strided import MAX_ELEMENTS, TRITON_DTYPES

CATEGORY = "reduction"
# Sizes and scalars never multiply compiles; the strides along n and k stay specialized, so a
# reduced or kept axis of stride 1 compiles to contiguous (vector) loads instead of gathers.
_INTS = ["M", "N", "K", "sm", "correction", "p"]


@triton.jit
def _accumulate(acc, x, inside, first, p, OP: tl.constexpr):
    """One block of x (masked lanes outside `inside`) folded into the running tile `acc`."""
    if OP == "sum" or OP == "mean" or OP == "var" or OP == "std":
        acc += x
    elif OP == "prod":
        acc *= tl.where(inside, x, 1)
    elif OP == "amax" or OP == "logsumexp":
        acc = tl.maximum(acc, tl.where(inside, x, first), propagate_nan=tl.PropagateNan.ALL)
    elif OP == "amin":
        acc = tl.minimum(acc, tl.where(inside, x, first), propagate_nan=tl.PropagateNan.ALL)
    elif OP == "all":
        acc = tl.where(tl.where(inside, x, first) == 0, 0, acc)
    elif OP == "any":
        acc = tl.where(tl.where(inside, x, first) != 0, 1, acc)
    elif OP == "norm2":
        acc += x * x
    elif OP == "norm1":
        acc += tl.abs(x)
    elif OP == "norminf":
        acc = tl.maximum(acc, tl.abs(x), propagate_nan=tl.PropagateNan.ALL)
    else:  # normp
        acc += tl.where(inside, libdevice.pow(tl.abs(x), p), 0.0)
    return acc


@launchable
@triton.jit(do_not_specialize=_INTS)
def reduce_kernel(x_ptr, out_ptr, M, N, K, sm, sn, sk, correction, p, OP: tl.constexpr, ACC: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ONE_BLOCK: tl.constexpr = False):
    """out[m, k] = OP over n of x[m, n, k]; OP a name: sum mean prod amax amin var std norm2 norm1 norminf normp
    logsumexp all any. With ONE_BLOCK (N <= BLOCK_N) the reduced axis is one load and no loop, so no
    running tile is carried: the reduction reads the block where it lies, as a row kernel would."""
    m = tl.program_id(0).to(tl.int64)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_in = ks < K
    base = x_ptr + m * sm + ks.to(tl.int64)[None, :] * sk
    first = tl.load(base, mask=k_in[None, :], other=0).to(ACC)
    if ONE_BLOCK:  # the block itself, masked lanes filled with what leaves the result unchanged
        ns = tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        at = base + ns.to(tl.int64)[:, None] * sn
        if OP == "prod":
            acc = tl.load(at, mask=inside, other=1).to(ACC)
        elif OP == "amax" or OP == "amin" or OP == "all" or OP == "any" or OP == "logsumexp":
            acc = tl.load(at, mask=inside, other=first.to(x_ptr.dtype.element_ty)).to(ACC)
        elif OP == "norminf":
            acc = tl.abs(tl.load(at, mask=inside, other=first.to(x_ptr.dtype.element_ty)).to(ACC))
        else:
            acc = _accumulate(tl.zeros([BLOCK_N, BLOCK_K], ACC), tl.load(at, mask=inside, other=0).to(ACC), inside, first,
                              p, OP)
    else:
        if OP == "prod":
            acc = tl.full([BLOCK_N, BLOCK_K], 1, ACC)
        elif OP == "amax" or OP == "amin" or OP == "all" or OP == "any" or OP == "logsumexp" or OP == "norminf":
            acc = first + tl.zeros([BLOCK_N, BLOCK_K], ACC)
        else:
            acc = tl.zeros([BLOCK_N, BLOCK_K], ACC)
        if OP == "norminf":
            acc = tl.abs(acc)
        for start in range(0, N, BLOCK_N):
            ns = start + tl.arange(0, BLOCK_N)
            inside = (ns < N)[:, None] & k_in[None, :]
            x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=0).to(ACC)
            acc = _accumulate(acc, x, inside, first, p, OP)
    if OP == "prod":
        result = tl.reduce(acc, 0, _multiply)
    elif OP == "amax" or OP == "norminf" or OP == "logsumexp":
        result = tl.reduce(acc, 0, nan_max)
    elif OP == "amin":
        result = tl.reduce(acc, 0, nan_min)
    elif OP == "all":
        result = tl.min(tl.where(acc != 0, 1, 0), 0)
    elif OP == "any":
        result = tl.max(tl.where(acc != 0, 1, 0), 0)
    else:
        result = tl.sum(acc, 0)
    if OP == "mean":
        result = result / N
    elif OP == "var" or OP == "std":
        mean = result / N
        squares = tl.zeros([BLOCK_N, BLOCK_K], ACC)
        for start in range(0, N, BLOCK_N):
            ns = start + tl.arange(0, BLOCK_N)
            inside = (ns < N)[:, None] & k_in[None, :]
            x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=0).to(ACC)
            deviation = tl.where(inside, x - mean[None, :], 0.0)
            squares += deviation * deviation
        result = tl.sum(squares, 0) / tl.maximum(N - correction, 0.0)
        if OP == "std":
            result = tl.sqrt_rn(result)
    elif OP == "norm2":
        result = tl.sqrt_rn(result)
    elif OP == "normp":
        result = libdevice.pow(result, 1.0 / p)
    elif OP == "logsumexp":
        finite_max = tl.where(tl.abs(result) == float("inf"), 0.0, result)
        total = tl.zeros([BLOCK_N, BLOCK_K], ACC)
        for start in range(0, N, BLOCK_N):
            ns = start + tl.arange(0, BLOCK_N)
            inside = (ns < N)[:, None] & k_in[None, :]
            x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=-float("inf")).to(ACC)
            total += libdevice.exp(x - finite_max[None, :])
        result = libdevice.log(tl.sum(total, 0)) + finite_max
    tl.store(out_ptr + m * K + ks, result.to(out_ptr.dtype.element_ty), mask=k_in)


@triton.jit
def _multiply(a, b):
    return a * b


@triton.jit
def nan_max(a, b):
    """max that returns NaN if either is NaN (ATen's max/amax), as a reduction combiner."""
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def nan_min(a, b):
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)


@launchable
@triton.jit(do_not_specialize=["M", "N", "K", "sm"])
def arg_reduce_kernel(x_ptr, values_ptr, index_ptr, M, N, K, sm, sn, sk, IS_MAX: tl.constexpr, ACC: tl.constexpr,
                      WRITE_VALUES: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Index (and value) of the max/min over n of x[m, n, k]: the first one on ties, the first NaN if any."""
    m = tl.program_id(0).to(tl.int64)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_in = ks < K
    base = x_ptr + m * sm + ks.to(tl.int64)[None, :] * sk
    first = tl.load(base, mask=k_in[None, :], other=0).to(ACC)
    best = first + tl.zeros([BLOCK_N, BLOCK_K], ACC)
    best_index = tl.zeros([BLOCK_N, BLOCK_K], tl.int64)
    for start in range(0, N, BLOCK_N):
        ns = start + tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=0).to(ACC)
        if IS_MAX:
            better = (x > best) | ((x != x) & (best == best))
        else:
            better = (x < best) | ((x != x) & (best == best))
        better = better & inside
        best = tl.where(better, x, best)
        best_index = tl.where(better, ns[:, None].to(tl.int64) + tl.zeros([BLOCK_N, BLOCK_K], tl.int64), best_index)
    if IS_MAX:
        winner = tl.reduce(best, 0, nan_max)
    else:
        winner = tl.reduce(best, 0, nan_min)
    is_winner = (best == winner[None, :]) | ((best != best) & (winner != winner)[None, :])
    index = tl.min(tl.where(is_winner, best_index, N), 0)
    tl.store(index_ptr + m * K + ks, index, mask=k_in)
    if WRITE_VALUES:
        tl.store(values_ptr + m * K + ks, winner.to(values_ptr.dtype.element_ty), mask=k_in)


# --- host side ------------------------------------------------------------------------------------------------

def _dims(x: torch.Tensor, dim: Any) -> list[int]:
    """Reduced dims, normalized; None or [] means all (what ATen's reductions mean by them)."""
    rank = max(x.dim(), 1)
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(rank))
    dims = [dim] if isinstance(dim, int) else list(dim)
    if any(d < -rank or d >= rank for d in dims):
        raise Decline("dim out of range: ATen's error")
    dims = sorted(d % rank for d in dims)
    if len(set(dims)) != len(dims):
        raise Decline("repeated dim: ATen's error")
    return dims


def _mergeable(sizes: list[int], strides: list[int]) -> bool:
    kept = [(s, t) for s, t in zip(sizes, strides) if s != 1]
    return all(kept[i][1] == kept[i + 1][1] * kept[i + 1][0] for i in range(len(kept) - 1))


def as_mnk(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, int, int, int, tuple[int, int, int]]:
    """(tensor, M, N, K, strides) such that element (m, n, k) is the reduction's input; copies only if it must."""
    if x.dim() == 0:
        return x, 1, 1, 1, (0, 0, 0)
    if x.is_contiguous() and dims[-1] - dims[0] == len(dims) - 1:  # the common case, without a permuted view
        shape = x.shape
        M, N, K = math.prod(shape[:dims[0]]), math.prod(shape[dims[0]:dims[-1] + 1]), math.prod(shape[dims[-1] + 1:])
        return x, M, N, K, (N * K if M > 1 else 0, K if N > 1 else 0, 1 if K > 1 else 0)
    kept = [d for d in range(x.dim()) if d not in dims]
    block = dims == list(range(dims[0], dims[-1] + 1))
    groups = ([d for d in kept if d < dims[0]], dims, [d for d in kept if d > dims[-1]]) if block else (kept, dims, [])
    order = [d for group in groups for d in group]
    view = x.permute(order)
    sizes, strides = list(view.shape), list(view.stride())
    bounds = [0, len(groups[0]), len(groups[0]) + len(groups[1]), len(order)]
    if not all(_mergeable(sizes[a:b], strides[a:b]) for a, b in zip(bounds, bounds[1:])):
        view = view.contiguous()
        sizes, strides = list(view.shape), list(view.stride())
    extents, steps = [], []
    for a, b in zip(bounds, bounds[1:]):
        extent = 1
        for s in sizes[a:b]:
            extent *= s
        inner = [t for s, t in zip(sizes[a:b], strides[a:b]) if s != 1]
        extents.append(extent)
        steps.append(inner[-1] if inner else 0)
    return view, extents[0], extents[1], extents[2], tuple(steps)


def _result_shape(x: torch.Tensor, dims: list[int], keepdim: bool) -> list[int]:
    if x.dim() == 0:
        return []
    return [1 if d in dims else s for d, s in enumerate(x.shape) if keepdim or d not in dims]


ONE_BLOCK_MAX = 8192  # longest reduced axis (with K == 1) read as one block: 32 KiB of fp32, within L1+L2


def _blocks(K: int) -> tuple[int, int]:
    return (1024, 1) if K == 1 else (32, 32)


def column_blocks(M: int, K: int) -> tuple[int, int]:
    """(BLOCK_N, BLOCK_K) for reducing over a strided axis with K kept elements contiguous beside it
    (a mean over dim 0): tiles of 1024 elements, as wide in K as the kept dims allow up to 512, but
    narrow enough for one program per thread. 4096x1024 over dim 0: 32x32 tiles 0.72 ms, 8x128
    0.38, 2x512 0.31 (ATen 0.43); 65536x64: 16x64 0.58 (ATen 0.68)."""
    if K == 1:
        return _blocks(K)
    block_k = min(512, next_power_of_2(K))
    while block_k > 32 and M * cdiv(K, block_k) < torch.get_num_threads():
        block_k //= 2
    return max(1, 1024 // block_k), block_k


def row_block(N: int, K: int, block_n: int) -> tuple[int, bool]:
    """(BLOCK_N, ONE_BLOCK) for a kernel walking N: the whole axis as one block where it is contiguous
    and short (K == 1, N <= ONE_BLOCK_MAX), else `block_n` and a loop."""
    if K == 1 and N <= ONE_BLOCK_MAX:
        return next_power_of_2(N), True
    return block_n, False


def _output(out: torch.Tensor | None, shape: list[int], dtype: torch.dtype) -> torch.Tensor:
    """A fresh result, or the caller's `out=` when it already has the right shape, dtype and layout."""
    if out is None:
        return torch.empty(shape, dtype=dtype)
    if list(out.shape) != shape or out.dtype != dtype or not out.is_contiguous():
        raise Decline("out= needs a resize or a cast: ATen's")
    return out


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype.is_floating_point else torch.int64


def _check(x: Any, dtypes: frozenset) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dtype not in dtypes or x.layout != torch.strided or x.numel() > MAX_ELEMENTS \
            or x.dim() > 64:
        raise Decline("not a tensor this reduction claims")
    return x


# name -> (kernel OP, dtypes, result dtype rule) where the rule maps (input dtype, dtype kwarg) to the result dtype
def _sum_dtype(dtype: torch.dtype, requested: torch.dtype | None) -> torch.dtype:
    return requested or (dtype if dtype.is_floating_point else torch.int64)


def _same(dtype: torch.dtype, requested: torch.dtype | None) -> torch.dtype:
    return requested or dtype


REDUCTIONS = {  # overload: (OP, dtypes, result dtype rule)
    "sum": ("sum", FLOATS | INTEGERS | BOOL, _sum_dtype), "sum.dim_IntList": ("sum", FLOATS | INTEGERS | BOOL, _sum_dtype),
    "sum.IntList_out": ("sum", FLOATS | INTEGERS | BOOL, _sum_dtype),
    "mean": ("mean", FLOATS, _same), "mean.dim": ("mean", FLOATS, _same), "mean.out": ("mean", FLOATS, _same),
    "prod": ("prod", FLOATS | INTEGERS | BOOL, _sum_dtype), "prod.dim_int": ("prod", FLOATS | INTEGERS | BOOL, _sum_dtype),
    "prod.int_out": ("prod", FLOATS | INTEGERS | BOOL, _sum_dtype),
    "amax": ("amax", FLOATS | INTEGERS, _same), "amax.out": ("amax", FLOATS | INTEGERS, _same),
    "amin": ("amin", FLOATS | INTEGERS, _same), "amin.out": ("amin", FLOATS | INTEGERS, _same),
    "logsumexp": ("logsumexp", FLOATS, _same),
    "all": ("all", FLOATS | INTEGERS - {torch.uint8} | BOOL, lambda d, r: torch.bool),
    "all.dim": ("all", FLOATS | INTEGERS - {torch.uint8} | BOOL, lambda d, r: torch.bool),
    "all.dims": ("all", FLOATS | INTEGERS - {torch.uint8} | BOOL, lambda d, r: torch.bool),
    "any": ("any", FLOATS | INTEGERS - {torch.uint8} | BOOL, lambda d, r: torch.bool),
    "any.dim": ("any", FLOATS | INTEGERS - {torch.uint8} | BOOL, lambda d, r: torch.bool),
    "any.dims": ("any", FLOATS | INTEGERS - {torch.uint8} | BOOL, lambda d, r: torch.bool),
}
STATISTICS = {"var.correction": "var", "var.correction_out": "var", "std.correction": "std", "std.correction_out": "std"}
NORM_OPS = {2.0: "norm2", 1.0: "norm1", float("inf"): "norminf"}


def _launch(op: str, x: torch.Tensor, dims: list[int], out: torch.Tensor, correction: float = 0.0, p: float = 2.0) -> None:
    view, M, N, K, (sm, sn, sk) = as_mnk(x, dims)
    if out.numel() == 0:
        return
    if N == 0:
        raise Decline("empty reduction: ATen's identity or error")
    block_n, block_k = column_blocks(M, K)
    block_n, single = row_block(N, K, block_n)
    acc = tl.float32 if x.dtype.is_floating_point or out.dtype.is_floating_point else tl.int64
    reduce_kernel[(M, cdiv(K, block_k))](view, out, M, N, K, sm, sn, sk, float(correction), float(p), OP=op,
                                         ACC=acc, BLOCK_N=block_n, BLOCK_K=block_k, ONE_BLOCK=single)


def _reduce(op: str, x: torch.Tensor, bound: dict, out_name: str | None, dtype: torch.dtype, **params: float) -> torch.Tensor:
    """Reduce `x` over the dims the call names (`dim`, `keepdim`) into its `out=` or a new `dtype` tensor."""
    dims = _dims(x, bound.get("dim"))
    out = _output(bound.get(out_name) if out_name else None, _result_shape(x, dims, bool(bound.get("keepdim", False))), dtype)
    _launch(op, x, dims, out, **params)
    return out


def _reduction_wrapper(overload: str, op: str, dtypes: frozenset, rule: Any):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    out_name = out_argument(schema)

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        x = _check(bound["self"], dtypes)
        requested = bound.get("dtype")
        result = rule(x.dtype, requested)
        if result not in FLOATS | INTEGERS | BOOL or (requested is not None and (
                requested not in FLOATS | INTEGERS or x.dtype.is_floating_point and not requested.is_floating_point)):
            raise Decline("result dtype")
        return _reduce(op, x, bound, out_name, result)

    return wrapper


def _statistic_wrapper(overload: str, op: str):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name)._schema
    out_name = out_argument(schema)

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        x = _check(bound["self"], FLOATS)
        correction = bound.get("correction")
        correction = 1.0 if correction is None else float(correction)
        return _reduce(op, x, bound, out_name, x.dtype, correction=correction)

    return wrapper


def _norm_wrapper(overload: str):
    schema = getattr(torch.ops.aten.linalg_vector_norm, overload.partition(".")[2] or "default")._schema
    out_name = out_argument(schema)

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        x = _check(bound["self"], FLOATS)
        if bound.get("dtype") is not None:
            raise Decline("dtype= of norm")
        order = float(bound.get("ord", 2))
        op = NORM_OPS.get(order, "normp" if order > 0 and order != float("inf") else None)
        if op is None:
            raise Decline("norm order")
        return _reduce(op, x, bound, out_name, x.dtype, p=order)

    return wrapper


def _arg_wrapper(overload: str, is_max: bool, with_values: bool):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    writes = [a.name for a in schema.arguments if a.kwarg_only and a.alias_info is not None and a.alias_info.is_write]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = bind(schema, args, kwargs)
        x = _check(bound["self"], FLOATS | INTEGERS)
        dim = bound.get("dim")
        keepdim = bool(bound.get("keepdim", False))
        source = x if dim is not None else x.reshape(-1)
        dims = _dims(source, dim if dim is not None else 0)
        shape = _result_shape(source, dims, keepdim) if dim is not None else ([1] * x.dim() if keepdim else [])
        given = [bound.get(name) for name in writes]  # max.dim_max: (max, max_values); argmax.out: (out,)
        index = _output(given[-1] if given else None, shape, torch.int64)
        values = _output(given[0] if given else None, shape, x.dtype) if with_values else index
        view, M, N, K, (sm, sn, sk) = as_mnk(source, dims)
        if N == 0:
            raise Decline("empty: ATen's error")
        if index.numel():
            block_n, block_k = column_blocks(M, K)
            arg_reduce_kernel[(M, cdiv(K, block_k))](view, values, index, M, N, K, sm, sn, sk, IS_MAX=is_max,
                                                            ACC=TRITON_DTYPES[_accumulator(x.dtype)], WRITE_VALUES=with_values,
                                                            BLOCK_N=block_n, BLOCK_K=block_k)
        return (values, index) if with_values else index

    return wrapper


for _overload, (_op, _dtypes, _rule) in REDUCTIONS.items():
    register(_overload, _reduction_wrapper(_overload, _op, _dtypes, _rule), _dtypes, CATEGORY)
for _overload, _op in STATISTICS.items():
    register(_overload, _statistic_wrapper(_overload, _op), FLOATS, CATEGORY)
for _overload in ("linalg_vector_norm", "linalg_vector_norm.out"):
    register(_overload, _norm_wrapper(_overload), FLOATS, CATEGORY)
for _overload, _is_max, _values in [("argmax", True, False), ("argmax.out", True, False), ("argmin", False, False),
                                    ("argmin.out", False, False), ("max.dim", True, True), ("max.dim_max", True, True),
                                    ("min.dim", False, True), ("min.dim_min", False, True)]:
    register(_overload, _arg_wrapper(_overload, _is_max, _values), FLOATS | INTEGERS, CATEGORY)
