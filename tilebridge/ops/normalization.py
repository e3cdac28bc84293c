"""layer_norm forward and backward (`native_layer_norm`, `native_layer_norm_backward`).

Rows are the normalized trailing dims, flattened: one program per row, walking it in blocks (two
passes for the statistics, one for the write), fp32 throughout; a row of at most
`reduction.ONE_BLOCK_MAX` is one block. The backward writes dx per row and
the per-element products dy * x_hat to a scratch matrix; dw and db are column sums of that matrix and
of dy, done by the library's own reduction kernel.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.launching import launchable
from tilebridge.ops.reduction import reduce_kernel, row_block
from tilebridge.ops.registry import FLOATS, Decline, register
from tilebridge.ops.strided import MAX_ELEMENTS

CATEGORY = "normalization"
BLOCK = 256


@triton.jit
def _scale_shift_store(x_hat, w_ptr, b_ptr, y_row, cols, inside, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr):
    """y = x_hat * w + b over one block of a row (w and b where given), stored in y's dtype."""
    y = x_hat
    if HAS_WEIGHT:
        y = y * tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    if HAS_BIAS:
        y = y + tl.load(b_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    tl.store(y_row + cols, y.to(y_row.dtype.element_ty), mask=inside)


@launchable
@triton.jit(do_not_specialize=["N", "eps"])
def layer_norm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, N, eps, HAS_WEIGHT: tl.constexpr,
                      HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr = False):
    """With ONE_BLOCK (N <= BLOCK) the row is one load that the mean, the variance and the write read
    where it lies; otherwise three passes over it in blocks."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * N
    if ONE_BLOCK:
        cols = tl.arange(0, BLOCK)
        inside = cols < N
        x = tl.load(x_row + cols, mask=inside, other=0.0).to(tl.float32)
        mean = tl.sum(x, 0) / N
        deviation = tl.where(inside, x - mean, 0.0)
        rstd = 1.0 / tl.sqrt_rn(tl.sum(deviation * deviation, 0) / N + eps)
        _scale_shift_store(deviation * rstd, w_ptr, b_ptr, y_ptr + row * N, cols, inside, HAS_WEIGHT, HAS_BIAS)
        tl.store(mean_ptr + row, mean.to(mean_ptr.dtype.element_ty))
        tl.store(rstd_ptr + row, rstd.to(rstd_ptr.dtype.element_ty))
        return
    total = tl.zeros([BLOCK], tl.float32)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        total += tl.load(x_row + cols, mask=cols < N, other=0.0).to(tl.float32)
    mean = tl.sum(total, 0) / N
    squares = tl.zeros([BLOCK], tl.float32)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(x_row + cols, mask=cols < N, other=0.0).to(tl.float32)
        deviation = tl.where(cols < N, x - mean, 0.0)
        squares += deviation * deviation
    rstd = 1.0 / tl.sqrt_rn(tl.sum(squares, 0) / N + eps)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        inside = cols < N
        x_hat = (tl.load(x_row + cols, mask=inside, other=0.0).to(tl.float32) - mean) * rstd
        _scale_shift_store(x_hat, w_ptr, b_ptr, y_ptr + row * N, cols, inside, HAS_WEIGHT, HAS_BIAS)
    tl.store(mean_ptr + row, mean.to(mean_ptr.dtype.element_ty))
    tl.store(rstd_ptr + row, rstd.to(rstd_ptr.dtype.element_ty))


@launchable
@triton.jit(do_not_specialize=["N"])
def layer_norm_backward_kernel(dy_ptr, x_ptr, w_ptr, mean_ptr, rstd_ptr, dx_ptr, dyxhat_ptr, N, HAS_WEIGHT: tl.constexpr,
                               WRITE_DX: tl.constexpr, WRITE_PRODUCT: tl.constexpr, BLOCK: tl.constexpr):
    """dx = rstd (w dy - mean(w dy) - x_hat mean(w dy x_hat)); also dy * x_hat for dw."""
    row = tl.program_id(0).to(tl.int64)
    mean = tl.load(mean_ptr + row).to(tl.float32)
    rstd = tl.load(rstd_ptr + row).to(tl.float32)
    sum_wdy = tl.zeros([BLOCK], tl.float32)
    sum_wdy_xhat = tl.zeros([BLOCK], tl.float32)
    for start in range(0, N, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        inside = cols < N
        dy = tl.load(dy_ptr + row * N + cols, mask=inside, other=0.0).to(tl.float32)
        x_hat = (tl.load(x_ptr + row * N + cols, mask=inside, other=0.0).to(tl.float32) - mean) * rstd
        if WRITE_PRODUCT:
            tl.store(dyxhat_ptr + row * N + cols, dy * x_hat, mask=inside)
        if HAS_WEIGHT:
            dy = dy * tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
        sum_wdy += dy
        sum_wdy_xhat += tl.where(inside, dy * x_hat, 0.0)
    if WRITE_DX:
        mean_wdy = tl.sum(sum_wdy, 0) / N
        mean_wdy_xhat = tl.sum(sum_wdy_xhat, 0) / N
        for start in range(0, N, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            inside = cols < N
            dy = tl.load(dy_ptr + row * N + cols, mask=inside, other=0.0).to(tl.float32)
            x_hat = (tl.load(x_ptr + row * N + cols, mask=inside, other=0.0).to(tl.float32) - mean) * rstd
            if HAS_WEIGHT:
                dy = dy * tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
            dx = (dy - mean_wdy - x_hat * mean_wdy_xhat) * rstd
            tl.store(dx_ptr + row * N + cols, dx.to(dx_ptr.dtype.element_ty), mask=inside)


def _rows(x: torch.Tensor, normalized_shape: list[int]) -> tuple[int, int]:
    if len(normalized_shape) == 0:
        raise Decline("empty normalized_shape: ATen's error")
    axis = x.dim() - len(normalized_shape)
    if axis < 0 or list(x.shape[axis:]) != list(normalized_shape):
        raise Decline("normalized_shape does not match: ATen's error")
    N = 1
    for s in normalized_shape:
        N *= s
    return x.numel() // max(N, 1), N


def _parameter(t: torch.Tensor | None, shape: list[int], dtype: torch.dtype) -> torch.Tensor | None:
    if t is None:
        return None
    if list(t.shape) != list(shape) or t.dtype != dtype:
        raise Decline("weight/bias of another dtype or size")
    return t.contiguous()


def statistics_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.dtype:
    """The dtype of a normalization's saved statistics, as ATen makes them on x's device.

    ATen's CPU kernels keep a 16-bit input's mean and rstd in the input's dtype; its CUDA kernels keep
    them in float32. The library follows the device, so its results line up with ATen's on each.
    """
    return torch.float32 if x.device.type == "cuda" and dtype in (torch.float16, torch.bfloat16) else dtype


def native_layer_norm(x: torch.Tensor, normalized_shape: list[int], weight: torch.Tensor | None,
                      bias: torch.Tensor | None, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, mean, rstd) with mean/rstd of shape x.shape[:axis] + [1] * len(normalized_shape), as ATen."""
    if x.dtype not in FLOATS or x.numel() > MAX_ELEMENTS:
        raise Decline("dtype")
    M, N = _rows(x, normalized_shape)
    if N == 0 or M == 0:
        raise Decline("empty")
    weight, bias = _parameter(weight, normalized_shape, x.dtype), _parameter(bias, normalized_shape, x.dtype)
    axis = x.dim() - len(normalized_shape)
    stats_shape = list(x.shape[:axis]) + [1] * len(normalized_shape)
    y = torch.empty(x.shape, dtype=x.dtype)
    mean = torch.empty(stats_shape, dtype=statistics_dtype(x, x.dtype))
    rstd = torch.empty(stats_shape, dtype=mean.dtype)
    xc = x.contiguous()
    block, single = row_block(N, 1, BLOCK)
    layer_norm_kernel[(M,)](xc, weight if weight is not None else xc, bias if bias is not None else xc, y, mean, rstd, N,
                            float(eps), HAS_WEIGHT=weight is not None, HAS_BIAS=bias is not None, BLOCK=block,
                            ONE_BLOCK=single)
    return y, mean, rstd


def _column_sum(matrix: torch.Tensor, M: int, N: int, out: torch.Tensor) -> None:
    """out[j] = sum_i matrix[i, j] for a contiguous (M, N) matrix, with the reduction kernel."""
    reduce_kernel[(1, cdiv(N, 32))](matrix, out, 1, M, N, 0, N, 1, 0.0, 0.0, OP="sum", ACC=tl.float32,
                                           BLOCK_N=32, BLOCK_K=32)


def native_layer_norm_backward(grad_out: torch.Tensor, x: torch.Tensor, normalized_shape: list[int], mean: torch.Tensor,
                               rstd: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                               output_mask: list[bool]) -> tuple[Any, Any, Any]:
    stats = statistics_dtype(x, x.dtype)
    if x.dtype not in FLOATS or grad_out.dtype != x.dtype or mean.dtype != stats or rstd.dtype != stats:
        raise Decline("dtypes")
    M, N = _rows(x, normalized_shape)
    if N == 0 or M == 0 or grad_out.shape != x.shape:
        raise Decline("empty or mismatched")
    weight = _parameter(weight, normalized_shape, x.dtype)
    want_dx, want_dw, want_db = output_mask
    dx = torch.empty(x.shape, dtype=x.dtype) if want_dx else None
    product = torch.empty((M, N), dtype=torch.float32) if want_dw and weight is not None else None
    dy = grad_out.contiguous()
    if want_dx or product is not None:
        layer_norm_backward_kernel[(M,)](dy, x.contiguous(), weight if weight is not None else dy, mean.contiguous(),
                                         rstd.contiguous(), dx if dx is not None else dy,
                                         product if product is not None else dy, N, HAS_WEIGHT=weight is not None,
                                         WRITE_DX=want_dx, WRITE_PRODUCT=product is not None, BLOCK=BLOCK)
    dw = db = None
    if product is not None:
        dw = torch.empty(normalized_shape, dtype=x.dtype)
        _column_sum(product, M, N, dw)
    if want_db and bias is not None:
        db = torch.empty(normalized_shape, dtype=x.dtype)
        _column_sum(dy, M, N, db)
    return dx, dw, db


register("native_layer_norm", native_layer_norm, FLOATS, CATEGORY)
register("native_layer_norm_backward", native_layer_norm_backward, FLOATS, CATEGORY)
