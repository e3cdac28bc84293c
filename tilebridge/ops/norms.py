"""batch_norm and group_norm, forward and backward (`native_batch_norm`, `_native_batch_norm_legit`,
`native_batch_norm_backward`, `native_group_norm`, `native_group_norm_backward`).

batch_norm: one program per channel walks the channel's N * HW elements of the (N, C, HW) view (any
strides), two passes for the statistics (and the running-stat update), one for the write. group_norm:
one program per (n, group) row of the contiguous input; its backward first sums dy and dy * x per
(n, channel), from which the group sums for dx and the channel sums for dw, db both follow. Statistics
are fp32. Flags that only choose a path (training, has_weight, ...) are run-time arguments, so one
compile per dtype serves every call. rms_norm has no CPU kernel in torch 2.13 (`_fused_rms_norm` is a
CompositeImplicit decomposition), so nothing of it reaches the CPU key.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.launching import launchable
from tilebridge.ops.normalization import statistics_dtype
from tilebridge.ops.reduction import _mergeable
from tilebridge.ops.registry import FLOATS, Decline, claim, register
from tilebridge.ops.strided import MAX_ELEMENTS

CATEGORY = "norms"
BLOCK = 256
# The spatial strides stay specialized: a unit stride makes the loads along H*W contiguous.
_BN_INTS = ["R", "HW", "sn", "sc", "momentum", "eps", "training", "has_weight", "has_bias", "has_running",
            "mean_stride", "var_stride"]


@triton.jit
def _offsets(r, HW, sn, shw):
    """Offset of element r of a channel's N * HW elements, in a (N, C, HW) layout of strides (sn, _, shw)."""
    r = r.to(tl.int64)
    return (r // HW) * sn + (r % HW) * shw


@launchable
@triton.jit(do_not_specialize=_BN_INTS)
def batch_norm_kernel(x_ptr, w_ptr, b_ptr, rmean_ptr, rvar_ptr, y_ptr, mean_ptr, invstd_ptr, R, HW, sn, sc, shw, momentum,
                      eps, training, has_weight, has_bias, has_running, mean_stride, var_stride, BLOCK: tl.constexpr):
    """Channel c of y = (x - mean) * invstd * w + b; batch statistics (training) or the running ones."""
    c = tl.program_id(0).to(tl.int64)
    x_base = x_ptr + c * sc
    rmean_ptr += c * mean_stride
    rvar_ptr += c * var_stride
    if training:
        total = tl.zeros([BLOCK], tl.float32)
        for start in range(0, R, BLOCK):
            r = start + tl.arange(0, BLOCK)
            total += tl.load(x_base + _offsets(r, HW, sn, shw), mask=r < R, other=0.0).to(tl.float32)
        mean = tl.sum(total, 0) / R
        squares = tl.zeros([BLOCK], tl.float32)
        for start in range(0, R, BLOCK):
            r = start + tl.arange(0, BLOCK)
            x = tl.load(x_base + _offsets(r, HW, sn, shw), mask=r < R, other=0.0).to(tl.float32)
            squares += tl.where(r < R, (x - mean) * (x - mean), 0.0)
        var = tl.sum(squares, 0) / R
        invstd = 1.0 / tl.sqrt_rn(var + eps)
        tl.store(mean_ptr + c, mean.to(mean_ptr.dtype.element_ty))
        tl.store(invstd_ptr + c, invstd.to(invstd_ptr.dtype.element_ty))
        if has_running:
            old_mean = tl.load(rmean_ptr).to(tl.float32)
            old_var = tl.load(rvar_ptr).to(tl.float32)
            tl.store(rmean_ptr, ((1.0 - momentum) * old_mean + momentum * mean).to(rmean_ptr.dtype.element_ty))
            unbiased = var * R / (R - 1.0)
            tl.store(rvar_ptr, ((1.0 - momentum) * old_var + momentum * unbiased).to(rvar_ptr.dtype.element_ty))
    else:
        mean = tl.load(rmean_ptr).to(tl.float32)
        invstd = 1.0 / tl.sqrt_rn(tl.load(rvar_ptr).to(tl.float32) + eps)
    scale = invstd
    shift = -mean * invstd
    if has_weight:
        w = tl.load(w_ptr + c).to(tl.float32)
        scale = scale * w
        shift = shift * w
    if has_bias:
        shift = shift + tl.load(b_ptr + c).to(tl.float32)
    y_base = y_ptr + c * HW
    for start in range(0, R, BLOCK):
        r = start + tl.arange(0, BLOCK)
        x = tl.load(x_base + _offsets(r, HW, sn, shw), mask=r < R, other=0.0).to(tl.float32)
        out_at = (r // HW).to(tl.int64) * (HW * tl.num_programs(0)) + r % HW
        tl.store(y_base + out_at, (x * scale + shift).to(y_ptr.dtype.element_ty), mask=r < R)


@launchable
@triton.jit(do_not_specialize=["R", "HW", "sn", "sc", "gn", "gc", "eps", "training", "has_weight", "want_dx"])
def batch_norm_backward_kernel(dy_ptr, x_ptr, w_ptr, mean_ptr, invstd_ptr, rvar_ptr, dx_ptr, dw_ptr, db_ptr, R, HW, sn, sc,
                               shw, gn, gc, ghw, eps, training, has_weight, want_dx, BLOCK: tl.constexpr):
    """Channel c: db = sum(dy), dw = sum(dy x_hat); dx = w invstd (dy - db / R - x_hat dw / R) (training) or
    w invstd dy (eval, where mean/invstd come from the running statistics)."""
    c = tl.program_id(0).to(tl.int64)
    mean = tl.load(mean_ptr + c).to(tl.float32)
    if training:
        invstd = tl.load(invstd_ptr + c).to(tl.float32)
    else:
        invstd = 1.0 / tl.sqrt_rn(tl.load(rvar_ptr + c).to(tl.float32) + eps)
    sum_dy = tl.zeros([BLOCK], tl.float32)
    sum_dy_xhat = tl.zeros([BLOCK], tl.float32)
    for start in range(0, R, BLOCK):
        r = start + tl.arange(0, BLOCK)
        dy = tl.load(dy_ptr + c * gc + _offsets(r, HW, gn, ghw), mask=r < R, other=0.0).to(tl.float32)
        x = tl.load(x_ptr + c * sc + _offsets(r, HW, sn, shw), mask=r < R, other=0.0).to(tl.float32)
        sum_dy += dy
        sum_dy_xhat += dy * (x - mean) * invstd
    db = tl.sum(sum_dy, 0)
    dw = tl.sum(sum_dy_xhat, 0)
    tl.store(db_ptr + c, db.to(db_ptr.dtype.element_ty))
    tl.store(dw_ptr + c, dw.to(dw_ptr.dtype.element_ty))
    if want_dx:
        w = tl.full([], 1.0, tl.float32)
        if has_weight:
            w = tl.load(w_ptr + c).to(tl.float32)
        for start in range(0, R, BLOCK):
            r = start + tl.arange(0, BLOCK)
            dy = tl.load(dy_ptr + c * gc + _offsets(r, HW, gn, ghw), mask=r < R, other=0.0).to(tl.float32)
            if training:
                x = tl.load(x_ptr + c * sc + _offsets(r, HW, sn, shw), mask=r < R, other=0.0).to(tl.float32)
                dx = (dy - db / R - (x - mean) * invstd * dw / R) * invstd * w
            else:
                dx = dy * invstd * w
            out_at = (r // HW).to(tl.int64) * (HW * tl.num_programs(0)) + c * HW + r % HW
            tl.store(dx_ptr + out_at, dx.to(dx_ptr.dtype.element_ty), mask=r < R)


@launchable
@triton.jit(do_not_specialize=["D", "HW", "G", "channels", "eps", "has_weight", "has_bias"])
def group_norm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, D, HW, G, channels, eps, has_weight, has_bias,
                      BLOCK: tl.constexpr):
    """Row (n, g) of D = channels * HW contiguous elements; the channel of element i is g * channels + i // HW."""
    row = tl.program_id(0).to(tl.int64)
    base = x_ptr + row * D
    total = tl.zeros([BLOCK], tl.float32)
    for start in range(0, D, BLOCK):
        i = start + tl.arange(0, BLOCK)
        total += tl.load(base + i, mask=i < D, other=0.0).to(tl.float32)
    mean = tl.sum(total, 0) / D
    squares = tl.zeros([BLOCK], tl.float32)
    for start in range(0, D, BLOCK):
        i = start + tl.arange(0, BLOCK)
        x = tl.load(base + i, mask=i < D, other=0.0).to(tl.float32)
        squares += tl.where(i < D, (x - mean) * (x - mean), 0.0)
    rstd = 1.0 / tl.sqrt_rn(tl.sum(squares, 0) / D + eps)
    tl.store(mean_ptr + row, mean.to(mean_ptr.dtype.element_ty))
    tl.store(rstd_ptr + row, rstd.to(rstd_ptr.dtype.element_ty))
    # channel by channel, as ATen: y = x * scale + shift with the channel's scale = rstd * w and
    # shift = b - mean * scale, so each pass streams one channel's HW elements (no division per element)
    first_channel = (row % G) * channels
    for c in range(0, channels):
        scale = rstd
        if has_weight:
            scale = rstd * tl.load(w_ptr + first_channel + c).to(tl.float32)
        shift = -mean * scale
        if has_bias:
            shift += tl.load(b_ptr + first_channel + c).to(tl.float32)
        for start in range(0, HW, BLOCK):
            j = start + tl.arange(0, BLOCK)
            at = c * HW + j
            y = tl.load(base + at, mask=j < HW, other=0.0).to(tl.float32) * scale + shift
            tl.store(y_ptr + row * D + at, y.to(y_ptr.dtype.element_ty), mask=j < HW)


@launchable
@triton.jit(do_not_specialize=["HW"])
def channel_sums_kernel(dy_ptr, x_ptr, ds_ptr, db_ptr, HW, BLOCK: tl.constexpr):
    """Row (n, c) of HW contiguous elements: ds = sum(dy x), db = sum(dy), in fp32."""
    row = tl.program_id(0).to(tl.int64)
    dy_x = tl.zeros([BLOCK], tl.float32)
    dy_sum = tl.zeros([BLOCK], tl.float32)
    for start in range(0, HW, BLOCK):
        i = start + tl.arange(0, BLOCK)
        dy = tl.load(dy_ptr + row * HW + i, mask=i < HW, other=0.0).to(tl.float32)
        dy_x += dy * tl.load(x_ptr + row * HW + i, mask=i < HW, other=0.0).to(tl.float32)
        dy_sum += dy
    tl.store(ds_ptr + row, tl.sum(dy_x, 0))
    tl.store(db_ptr + row, tl.sum(dy_sum, 0))


@launchable
@triton.jit(do_not_specialize=["D", "HW", "G", "channels", "has_weight"])
def group_norm_backward_kernel(dy_ptr, x_ptr, w_ptr, mean_ptr, rstd_ptr, ds_ptr, db_ptr, dx_ptr, D, HW, G, channels,
                               has_weight, BLOCK: tl.constexpr, BLOCK_C: tl.constexpr):
    """Row (n, g): dx = rstd (w dy - mean(w dy) - x_hat mean(w dy x_hat)), the two means from the channel sums."""
    row = tl.program_id(0).to(tl.int64)
    first_channel = (row % G) * channels
    mean = tl.load(mean_ptr + row).to(tl.float32)
    rstd = tl.load(rstd_ptr + row).to(tl.float32)
    sum_wdy = tl.zeros([BLOCK_C], tl.float32)
    sum_wdy_x = tl.zeros([BLOCK_C], tl.float32)
    for start in range(0, channels, BLOCK_C):
        j = start + tl.arange(0, BLOCK_C)
        inside = j < channels
        w = tl.where(inside, 1.0, 0.0)
        if has_weight:
            w = tl.load(w_ptr + first_channel + j, mask=inside, other=0.0).to(tl.float32)
        at = row * channels + j
        db = tl.load(db_ptr + at, mask=inside, other=0.0)
        sum_wdy += w * db
        sum_wdy_x += w * (tl.load(ds_ptr + at, mask=inside, other=0.0) - mean * db)
    mean_wdy = tl.sum(sum_wdy, 0) / D
    mean_wdy_xhat = tl.sum(sum_wdy_x, 0) * rstd / D
    for start in range(0, D, BLOCK):
        i = start + tl.arange(0, BLOCK)
        inside = i < D
        dy = tl.load(dy_ptr + row * D + i, mask=inside, other=0.0).to(tl.float32)
        if has_weight:
            dy = dy * tl.load(w_ptr + first_channel + i // HW, mask=inside, other=0.0).to(tl.float32)
        x_hat = (tl.load(x_ptr + row * D + i, mask=inside, other=0.0).to(tl.float32) - mean) * rstd
        dx = (dy - mean_wdy - x_hat * mean_wdy_xhat) * rstd
        tl.store(dx_ptr + row * D + i, dx.to(dx_ptr.dtype.element_ty), mask=inside)


@launchable
@triton.jit(do_not_specialize=["N", "C", "G", "channels"])
def group_norm_parameter_kernel(ds_ptr, db_ptr, mean_ptr, rstd_ptr, dw_ptr, dbias_ptr, N, C, G, channels,
                                BLOCK_C: tl.constexpr):
    """Channels c of a block: dw = sum_n rstd (ds - mean db), dbias = sum_n db (statistics of c's group)."""
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    inside = c < C
    group = c // channels
    dw = tl.zeros([BLOCK_C], tl.float32)
    dbias = tl.zeros([BLOCK_C], tl.float32)
    for n in range(0, N):
        db = tl.load(db_ptr + n * C + c, mask=inside, other=0.0)
        ds = tl.load(ds_ptr + n * C + c, mask=inside, other=0.0)
        mean = tl.load(mean_ptr + n * G + group, mask=inside, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + n * G + group, mask=inside, other=0.0).to(tl.float32)
        dw += rstd * (ds - mean * db)
        dbias += db
    tl.store(dw_ptr + c, dw.to(dw_ptr.dtype.element_ty), mask=inside)
    tl.store(dbias_ptr + c, dbias.to(dbias_ptr.dtype.element_ty), mask=inside)


# --- host side ------------------------------------------------------------------------------------------------

def _parameter_dtype(x: torch.Tensor, params: list[torch.Tensor | None]) -> torch.dtype:
    """The dtype of weight/bias/statistics: all alike, either x's or float32 next to a 16-bit x (ATen's mixed mode)."""
    claim(x.dtype, FLOATS)
    given = {p.dtype for p in params if p is not None}
    if len(given) > 1:
        raise Decline("parameters of different dtypes: ATen's")
    dtype = given.pop() if given else x.dtype
    if dtype != x.dtype and not (dtype == torch.float32 and x.dtype in (torch.float16, torch.bfloat16)):
        raise Decline("parameter dtype: ATen's")
    return dtype


def _vector(t: torch.Tensor | None, size: int) -> torch.Tensor | None:
    """A per-channel parameter as a contiguous vector."""
    if t is not None and t.shape != (size,):
        raise Decline("a parameter of another size: ATen's")
    return None if t is None else t.contiguous()


def _channels_view(x: torch.Tensor) -> tuple[torch.Tensor, int, int, int, int, int, int]:
    """(tensor, N, C, HW, stride n, stride c, stride hw) of x as (N, C, HW), without a copy where strides merge."""
    if x.dim() < 2 or x.numel() == 0 or x.numel() > MAX_ELEMENTS:
        raise Decline("rank, empty or size")
    sizes, strides = list(x.shape[2:]), list(x.stride()[2:])
    if not _mergeable(sizes, strides):
        x = x.contiguous()
        strides = list(x.stride()[2:])
    inner = [t for s, t in zip(sizes, strides) if s != 1]
    HW = x.numel() // (x.shape[0] * x.shape[1])
    return x, x.shape[0], x.shape[1], HW, x.stride(0), x.stride(1), inner[-1] if inner else 1


def native_batch_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                      running_mean: torch.Tensor | None, running_var: torch.Tensor | None, training: bool,
                      momentum: float, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, save_mean, save_invstd); empty statistics in eval, the running ones (any stride) updated in place in training."""
    dtype = _parameter_dtype(x, [weight, bias, running_mean, running_var])
    view, N, C, HW, sn, sc, shw = _channels_view(x)
    weight, bias = _vector(weight, C), _vector(bias, C)
    if any(t is not None and t.shape != (C,) for t in (running_mean, running_var)):
        raise Decline("running statistics of another size: ATen's")
    has_running = running_mean is not None and running_var is not None
    if (running_mean is None) != (running_var is None) or (not training and not has_running):
        raise Decline("eval without running statistics: ATen's")
    y = torch.empty(x.shape, dtype=x.dtype)
    saved = C if training else 0
    stats = statistics_dtype(x, dtype)
    mean, invstd = torch.empty(saved, dtype=stats), torch.empty(saved, dtype=stats)
    scratch = y
    batch_norm_kernel[(C,)](view, weight if weight is not None else scratch, bias if bias is not None else scratch,
                            running_mean if has_running else scratch, running_var if has_running else scratch, y,
                            mean if training else scratch, invstd if training else scratch, N * HW, HW, sn, sc, shw,
                            float(momentum), float(eps), int(training), int(weight is not None), int(bias is not None),
                            int(has_running), running_mean.stride(0) if has_running else 0,
                            running_var.stride(0) if has_running else 0, BLOCK=BLOCK)
    return y, mean, invstd


def _legit(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, running_mean: torch.Tensor,
           running_var: torch.Tensor, training: bool, momentum: float, eps: float) -> tuple[Any, Any, Any]:
    return native_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)


def _legit_no_stats(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, training: bool,
                    momentum: float, eps: float) -> tuple[Any, Any, Any]:
    return native_batch_norm(x, weight, bias, None, None, training, momentum, eps)


def _with_update(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, running_mean: torch.Tensor,
                 running_var: torch.Tensor, momentum: float, eps: float) -> tuple[Any, Any, Any, Any]:
    """Training batch_norm that updates the running statistics, and an empty reserve (ATen's CPU has none)."""
    y, mean, invstd = native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
    return y, mean, invstd, torch.empty(0, dtype=torch.uint8)


def native_batch_norm_backward(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None,
                               running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                               save_mean: torch.Tensor | None, save_invstd: torch.Tensor | None, train: bool, eps: float,
                               output_mask: list[bool]) -> tuple[Any, Any, Any]:
    mean, spread = (save_mean, save_invstd) if train else (running_mean, running_var)
    if mean is None or spread is None or grad_out.dtype != x.dtype or grad_out.shape != x.shape:
        raise Decline("statistics missing or grad_out of another dtype/shape")
    dtype = _parameter_dtype(x, [weight, mean, spread])
    view, N, C, HW, sn, sc, shw = _channels_view(x)
    dy, _, _, _, gn, gc, ghw = _channels_view(grad_out)
    weight, mean, spread = _vector(weight, C), _vector(mean, C), _vector(spread, C)
    dx = torch.empty(x.shape, dtype=x.dtype) if output_mask[0] else None
    dw, db = torch.empty(C, dtype=dtype), torch.empty(C, dtype=dtype)
    batch_norm_backward_kernel[(C,)](dy, view, weight if weight is not None else dw, mean, spread, spread,
                                     dx if dx is not None else dy, dw, db, N * HW, HW, sn, sc, shw, gn, gc, ghw, float(eps),
                                     int(train), int(weight is not None), int(dx is not None), BLOCK=BLOCK)
    return dx, dw if output_mask[1] else None, db if output_mask[2] else None


def _backward_with_reserve(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None,
                           running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
                           save_mean: torch.Tensor | None, save_var: torch.Tensor | None, update: bool, eps: float,
                           output_mask: list[bool], reserve: torch.Tensor) -> tuple[Any, Any, Any]:
    """`batch_norm_backward`, the backward of `_batch_norm_with_update`: `update` plays `train`'s part."""
    return native_batch_norm_backward(grad_out, x, weight, running_mean, running_var, save_mean, save_var, update, eps,
                                      output_mask)


def _groups(x: torch.Tensor, N: int, C: int, HxW: int, group: int) -> int:
    if x.dim() < 2 or x.shape[0] != N or x.shape[1] != C or N * C * HxW != x.numel() or group <= 0 or C % group:
        raise Decline("group_norm sizes: ATen's error")
    if x.numel() == 0 or x.numel() > MAX_ELEMENTS:
        raise Decline("empty or size")
    return C // group


def native_group_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, N: int, C: int, HxW: int,
                      group: int, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, mean, rstd) with mean/rstd of shape (N, group), in the parameters' dtype as ATen's."""
    if not x.is_contiguous():
        raise Decline("a strided input: ATen's error, or channels-last (ATen's layout choice)")
    dtype = _parameter_dtype(x, [weight, bias])
    channels = _groups(x, N, C, HxW, group)
    weight, bias = _vector(weight, C), _vector(bias, C)
    y = torch.empty(x.shape, dtype=x.dtype)
    mean, rstd = torch.empty((N, group), dtype=dtype), torch.empty((N, group), dtype=dtype)
    group_norm_kernel[(N * group,)](x, weight if weight is not None else x, bias if bias is not None else x, y, mean, rstd,
                                    channels * HxW, HxW, group, channels, float(eps), int(weight is not None),
                                    int(bias is not None), BLOCK=BLOCK)
    return y, mean, rstd


def native_group_norm_backward(grad_out: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor,
                               weight: torch.Tensor | None, N: int, C: int, HxW: int, group: int,
                               output_mask: list[bool]) -> tuple[Any, Any, Any]:
    dtype = _parameter_dtype(x, [weight, mean, rstd])
    channels = _groups(x, N, C, HxW, group)
    if grad_out.dtype != x.dtype or grad_out.shape != x.shape or mean.numel() != N * group or rstd.numel() != N * group:
        raise Decline("grad_out or statistics of another dtype/shape: ATen's error")
    if weight is None and (output_mask[1] or output_mask[2]):
        raise Decline("dw/db without a weight: ATen's error")
    weight = _vector(weight, C)
    dy, xc, mean, rstd = grad_out.contiguous(), x.contiguous(), mean.contiguous(), rstd.contiguous()
    ds, db = torch.empty(N * C, dtype=torch.float32), torch.empty(N * C, dtype=torch.float32)
    channel_sums_kernel[(N * C,)](dy, xc, ds, db, HxW, BLOCK=BLOCK)
    dx = dw = dbias = None
    if output_mask[0]:
        dx = torch.empty(x.shape, dtype=x.dtype)
        group_norm_backward_kernel[(N * group,)](dy, xc, weight if weight is not None else dy, mean, rstd, ds, db, dx,
                                                 channels * HxW, HxW, group, channels, int(weight is not None), BLOCK=BLOCK,
                                                 BLOCK_C=32)
    if output_mask[1] or output_mask[2]:
        dw, dbias = torch.empty(C, dtype=dtype), torch.empty(C, dtype=dtype)
        group_norm_parameter_kernel[(cdiv(C, 32),)](ds, db, mean, rstd, dw, dbias, N, C, group, channels, BLOCK_C=32)
    return dx, dw if output_mask[1] else None, dbias if output_mask[2] else None


register("native_batch_norm", native_batch_norm, FLOATS, CATEGORY)
register("_native_batch_norm_legit", _legit, FLOATS, CATEGORY)
register("_native_batch_norm_legit.no_stats", _legit_no_stats, FLOATS, CATEGORY)
register("_batch_norm_with_update", _with_update, FLOATS, CATEGORY)
register("native_batch_norm_backward", native_batch_norm_backward, FLOATS, CATEGORY)
register("batch_norm_backward", _backward_with_reserve, FLOATS, CATEGORY)
register("native_group_norm", native_group_norm, FLOATS, CATEGORY)
register("native_group_norm_backward", native_group_norm_backward, FLOATS, CATEGORY)
