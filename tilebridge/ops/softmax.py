"""softmax / log_softmax along any dim, and their backward ops (what autograd calls for them).

The input is viewed as (M, N, K) with the softmax dim as N (see `reduction.as_mnk`); one program owns
one m and a block of K lanes and makes three passes over N: the max, the sum of exponentials, the
write; a contiguous row of at most `reduction.ONE_BLOCK_MAX` is one block that the three read where
it lies. The output is contiguous in the input's dim order.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from tilebridge.grid import cdiv
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import bind, out_argument
from tilebridge.ops.reduction import _blocks, as_mnk, nan_max, row_block
from tilebridge.ops.registry import FLOATS, Decline, register
from tilebridge.ops.strided import MAX_ELEMENTS

CATEGORY = "softmax"


@launchable
@triton.jit(do_not_specialize=["M", "N", "K", "sm"])  # sn, sk specialized: stride 1 gives contiguous loads
def softmax_kernel(x_ptr, out_ptr, M, N, K, sm, sn, sk, LOG: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                   ONE_BLOCK: tl.constexpr = False):
    """With ONE_BLOCK (N <= BLOCK_N) the softmax dim is one load: max, sum and write read it where it lies."""
    m = tl.program_id(0).to(tl.int64)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_in = ks < K
    base = x_ptr + m * sm + ks.to(tl.int64)[None, :] * sk
    if ONE_BLOCK:
        ns = tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=-float("inf")).to(tl.float32)
        row_max = tl.reduce(x, 0, nan_max)
        shift = tl.where(row_max == -float("inf"), 0.0, row_max)
        e = libdevice.exp(x - shift[None, :])
        row_sum = tl.sum(e, 0)
        if LOG:
            y = x - shift[None, :] - libdevice.log(row_sum)[None, :]
        else:
            y = e / row_sum[None, :]
        out_at = out_ptr + m * N * K + ks.to(tl.int64)[None, :] + ns.to(tl.int64)[:, None] * K
        tl.store(out_at, y.to(out_ptr.dtype.element_ty), mask=inside)
        return
    top = tl.full([BLOCK_N, BLOCK_K], -float("inf"), tl.float32)
    for start in range(0, N, BLOCK_N):
        ns = start + tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=-float("inf")).to(tl.float32)
        top = tl.maximum(top, x, propagate_nan=tl.PropagateNan.ALL)
    row_max = tl.reduce(top, 0, nan_max)
    shift = tl.where(row_max == -float("inf"), 0.0, row_max)
    total = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for start in range(0, N, BLOCK_N):
        ns = start + tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=-float("inf")).to(tl.float32)
        total += libdevice.exp(x - shift[None, :])
    row_sum = tl.sum(total, 0)
    out_base = out_ptr + m * N * K + ks.to(tl.int64)[None, :]
    for start in range(0, N, BLOCK_N):
        ns = start + tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        x = tl.load(base + ns.to(tl.int64)[:, None] * sn, mask=inside, other=0.0).to(tl.float32)
        if LOG:
            y = x - shift[None, :] - libdevice.log(row_sum)[None, :]
        else:
            y = libdevice.exp(x - shift[None, :]) / row_sum[None, :]
        tl.store(out_base + ns.to(tl.int64)[:, None] * K, y.to(out_ptr.dtype.element_ty), mask=inside)


@launchable
@triton.jit(do_not_specialize=["M", "N", "K"])
def softmax_backward_kernel(grad_ptr, y_ptr, out_ptr, M, N, K, LOG: tl.constexpr, BLOCK_N: tl.constexpr,
                            BLOCK_K: tl.constexpr, ONE_BLOCK: tl.constexpr = False):
    """softmax: dx = y (g - sum(g y)); log_softmax: dx = g - exp(y) sum(g). All three tensors contiguous.
    With ONE_BLOCK (N <= BLOCK_N) each tensor's block is one load, read where it lies by both passes."""
    m = tl.program_id(0).to(tl.int64)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_in = ks < K
    offset = m * N * K + ks.to(tl.int64)[None, :]
    if ONE_BLOCK:
        ns = tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        at = offset + ns.to(tl.int64)[:, None] * K
        g = tl.load(grad_ptr + at, mask=inside, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + at, mask=inside, other=0.0).to(tl.float32)
        if LOG:
            dx = g - libdevice.exp(y) * tl.sum(g, 0)[None, :]
        else:
            dx = y * (g - tl.sum(g * y, 0)[None, :])
        tl.store(out_ptr + at, dx.to(out_ptr.dtype.element_ty), mask=inside)
        return
    total = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for start in range(0, N, BLOCK_N):
        ns = start + tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        at = offset + ns.to(tl.int64)[:, None] * K
        g = tl.load(grad_ptr + at, mask=inside, other=0.0).to(tl.float32)
        if LOG:
            total += g
        else:
            total += g * tl.load(y_ptr + at, mask=inside, other=0.0).to(tl.float32)
    row_sum = tl.sum(total, 0)[None, :]
    for start in range(0, N, BLOCK_N):
        ns = start + tl.arange(0, BLOCK_N)
        inside = (ns < N)[:, None] & k_in[None, :]
        at = offset + ns.to(tl.int64)[:, None] * K
        g = tl.load(grad_ptr + at, mask=inside, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + at, mask=inside, other=0.0).to(tl.float32)
        if LOG:
            dx = g - libdevice.exp(y) * row_sum
        else:
            dx = y * (g - row_sum)
        tl.store(out_ptr + at, dx.to(out_ptr.dtype.element_ty), mask=inside)


def _dim(x: torch.Tensor, dim: int) -> int:
    rank = max(x.dim(), 1)
    if not -rank <= dim < rank:
        raise Decline("dim out of range: ATen's error")
    return dim % rank


def _out(given: torch.Tensor | None, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if given is None:
        return torch.empty(like.shape, dtype=dtype)
    if given.shape != like.shape or given.dtype != dtype or not given.is_contiguous():
        raise Decline("out= needs a resize or a cast")
    return given


def _forward(overload: str, log: bool):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    out_name = out_argument(schema)

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        x = bound["self"]
        if x.dtype not in FLOATS or x.layout != torch.strided or x.numel() > MAX_ELEMENTS:
            raise Decline("dtype")
        half_to_float = bool(bound.get("half_to_float"))
        if half_to_float and x.dtype != torch.float16:
            raise Decline("half_to_float is for float16 only")
        out = _out(bound.get(out_name) if out_name else None, x, torch.float32 if half_to_float else x.dtype)
        if x.numel() == 0:
            return out
        view, M, N, K, (sm, sn, sk) = as_mnk(x, [_dim(x, bound["dim"])])
        block_n, block_k = _blocks(K)
        block_n, single = row_block(N, K, block_n)
        softmax_kernel[(M, cdiv(K, block_k))](view, out, M, N, K, sm, sn, sk, LOG=log, BLOCK_N=block_n,
                                              BLOCK_K=block_k, ONE_BLOCK=single)
        return out

    return wrapper


def _backward(overload: str, log: bool):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    out_name = out_argument(schema)

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        grad, y, dtype = bound["grad_output"], bound["output"], bound["input_dtype"]
        if grad.dtype not in FLOATS or y.dtype != grad.dtype or dtype not in FLOATS or grad.shape != y.shape:
            raise Decline("dtypes or shapes")
        out = _out(bound.get(out_name) if out_name else None, grad, dtype)
        if grad.numel() == 0:
            return out
        dim = _dim(grad, bound["dim"])
        shape = list(grad.shape) or [1]
        M = N = K = 1
        for d, s in enumerate(shape):
            M, N, K = (M * s, N, K) if d < dim else ((M, N * s, K) if d == dim else (M, N, K * s))
        block_n, block_k = _blocks(K)
        block_n, single = row_block(N, K, block_n)
        softmax_backward_kernel[(M, cdiv(K, block_k))](grad.contiguous(), y.contiguous(), out, M, N, K, LOG=log,
                                                       BLOCK_N=block_n, BLOCK_K=block_k, ONE_BLOCK=single)
        return out

    return wrapper


for _overload, _log in [("_softmax", False), ("_softmax.out", False), ("_log_softmax", True), ("_log_softmax.out", True)]:
    register(_overload, _forward(_overload, _log), FLOATS, CATEGORY)
for _overload, _log in [("_softmax_backward_data", False), ("_softmax_backward_data.out", False),
                        ("_log_softmax_backward_data", True), ("_log_softmax_backward_data.out", True)]:
    register(_overload, _backward(_overload, _log), FLOATS, CATEGORY)
