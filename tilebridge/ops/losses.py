"""Loss functions and their backward ops: nll_loss and nll_loss2d (what cross_entropy reaches after
log_softmax, for (N, C) and (N, C, H, W) inputs), mse_loss, binary_cross_entropy.

Elementwise losses run one kernel over the flattened operands: with `reduction="none"` it stores each
loss, otherwise every program sums its chunk in fp32 into a partial and a one-program kernel adds the
partials and scales them (1/numel for the mean). Inputs ATen rejects (a target out of range, a
probability outside [0, 1]) are counted by the kernels; the wrapper then declines, so ATen raises its
own error. Reductions follow ATen's enum: 0 none, 1 mean, 2 sum.
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
from tilebridge.ops.registry import FLOATS, Decline, claim, register
from tilebridge.ops.strided import MAX_ELEMENTS, has_internal_overlap

CATEGORY = "losses"
BLOCK = 1024
NONE, MEAN, SUM = 0, 1, 2
MAX_PARTIALS = 64


@triton.jit
def _loss(x, y, LOSS: tl.constexpr):
    """One element's loss in fp32, and whether ATen would reject the element."""
    if LOSS == "mse":
        loss = (x - y) * (x - y)
        bad = x < -float("inf")  # mse accepts every value
    else:  # bce, with ATen's clamp of the logarithms at -100
        log_x = tl.maximum(libdevice.log(x), -100.0)
        log_not_x = tl.maximum(libdevice.log1p(-x), -100.0)
        loss = (y - 1.0) * log_not_x - y * log_x
        bad = ~((x >= 0.0) & (x <= 1.0))
    return loss, bad


@launchable
@triton.jit(do_not_specialize=["n", "chunk", "has_weight", "reduce"])
def elementwise_loss_kernel(x_ptr, y_ptr, w_ptr, out_ptr, partial_ptr, bad_ptr, n, chunk, has_weight, reduce,
                            LOSS: tl.constexpr, BLOCK: tl.constexpr):
    """Losses of elements [pid * chunk, (pid + 1) * chunk): stored (reduce 0) or summed into partial[pid]."""
    pid = tl.program_id(0)
    total = tl.zeros([BLOCK], tl.float32)
    bad_count = tl.zeros([BLOCK], tl.int32)
    for start in range(0, chunk, BLOCK):
        index = pid.to(tl.int64) * chunk + start + tl.arange(0, BLOCK)
        inside = index < n
        x = tl.load(x_ptr + index, mask=inside, other=0.5).to(tl.float32)
        y = tl.load(y_ptr + index, mask=inside, other=0.5).to(tl.float32)
        loss, bad = _loss(x, y, LOSS)
        if has_weight:
            loss = loss * tl.load(w_ptr + index, mask=inside, other=0.0).to(tl.float32)
        bad_count += (bad & inside).to(tl.int32)
        if reduce:
            total += tl.where(inside, loss, 0.0)
        else:
            tl.store(out_ptr + index, loss.to(out_ptr.dtype.element_ty), mask=inside)
    tl.store(bad_ptr + pid, tl.sum(bad_count, 0))
    if reduce:
        tl.store(partial_ptr + pid, tl.sum(total, 0))


@launchable
@triton.jit(do_not_specialize=["parts", "scale"])
def finish_kernel(partial_ptr, out_ptr, parts, scale, BLOCK: tl.constexpr):
    """out = scale * sum(partial[:parts]) (one program)."""
    index = tl.arange(0, BLOCK)
    total = tl.sum(tl.load(partial_ptr + index, mask=index < parts, other=0.0), 0)
    tl.store(out_ptr, (total * scale).to(out_ptr.dtype.element_ty))


@launchable
@triton.jit(do_not_specialize=["n", "scale", "g_stride", "has_weight"])
def loss_gradient_kernel(x_ptr, y_ptr, g_ptr, w_ptr, out_ptr, n, scale, g_stride, has_weight, LOSS: tl.constexpr,
                         BLOCK: tl.constexpr):
    """d loss / d x times the incoming gradient (one value for mean/sum, one per element for none), times scale."""
    index = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = index < n
    x = tl.load(x_ptr + index, mask=inside, other=0.5).to(tl.float32)
    y = tl.load(y_ptr + index, mask=inside, other=0.5).to(tl.float32)
    g = tl.load(g_ptr + index * g_stride, mask=inside, other=0.0).to(tl.float32)
    if LOSS == "mse":
        grad = scale * (x - y) * g
    else:  # ATen's bce gradient, with its 1e-12 floor under x (1 - x)
        grad = g * (x - y) / tl.maximum((1.0 - x) * x, 1e-12)
        if has_weight:
            grad = grad * tl.load(w_ptr + index, mask=inside, other=0.0).to(tl.float32)
        grad = grad * scale
    tl.store(out_ptr + index, grad.to(out_ptr.dtype.element_ty), mask=inside)


@launchable
@triton.jit(do_not_specialize=["N", "C", "S", "sn", "sc", "ss", "ignore_index", "rows_per_program", "has_weight",
                               "reduction"])
def nll_forward_kernel(x_ptr, target_ptr, w_ptr, out_ptr, weight_sum_ptr, bad_ptr, N, C, S, sn, sc, ss, ignore_index,
                       rows_per_program, has_weight, reduction, BLOCK: tl.constexpr):
    """-w[t] x[n, t, s] per row i = n * S + s of the (N, C, S) input; reduction 0 stores them, 1/2 (one program)
    store the mean or the sum and sum(w[t])."""
    pid = tl.program_id(0)
    losses = tl.zeros([BLOCK], tl.float32)
    weights = tl.zeros([BLOCK], tl.float32)
    bad_count = tl.zeros([BLOCK], tl.int32)
    for start in range(0, rows_per_program, BLOCK):
        rows = pid.to(tl.int64) * rows_per_program + start + tl.arange(0, BLOCK)
        inside = rows < N
        target = tl.load(target_ptr + rows, mask=inside, other=ignore_index)
        counted = inside & (target != ignore_index)
        in_range = (target >= 0) & (target < C)
        bad_count += (counted & ~in_range).to(tl.int32)
        counted = counted & in_range
        column = tl.where(counted, target, 0)
        x = tl.load(x_ptr + (rows // S) * sn + (rows % S) * ss + column * sc, mask=counted, other=0.0).to(tl.float32)
        w = tl.where(counted, 1.0, 0.0)
        if has_weight:
            w = tl.load(w_ptr + column, mask=counted, other=0.0).to(tl.float32)
        loss = tl.where(counted, -w * x, 0.0)
        if reduction == 0:
            tl.store(out_ptr + rows, loss.to(out_ptr.dtype.element_ty), mask=inside)
        losses += loss
        weights += w
    tl.store(bad_ptr + pid, tl.sum(bad_count, 0))
    if reduction != 0:
        total, weight_sum = tl.sum(losses, 0), tl.sum(weights, 0)
        if reduction == 1:
            total = total / weight_sum
        tl.store(out_ptr, total.to(out_ptr.dtype.element_ty))
        tl.store(weight_sum_ptr, weight_sum.to(weight_sum_ptr.dtype.element_ty))


@launchable
@triton.jit(do_not_specialize=["N", "C", "S", "ignore_index", "grad_stride", "has_weight", "mean"])
def nll_backward_kernel(grad_ptr, target_ptr, w_ptr, weight_sum_ptr, out_ptr, bad_ptr, N, C, S, ignore_index, grad_stride,
                        has_weight, mean, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Rows i = n * S + s of the contiguous (N, C, S) gradient: -w[t] g at class t, zero elsewhere (g / sum(w[t])
    for the mean)."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    inside = rows < N
    target = tl.load(target_ptr + rows, mask=inside, other=ignore_index)
    counted = inside & (target != ignore_index)
    in_range = (target >= 0) & (target < C)
    tl.store(bad_ptr + tl.program_id(0), tl.sum((counted & ~in_range).to(tl.int32), 0))
    counted = counted & in_range
    column = tl.where(counted, target, 0)
    g = tl.load(grad_ptr + rows * grad_stride, mask=inside, other=0.0).to(tl.float32)
    if has_weight:
        g = g * tl.load(w_ptr + column, mask=counted, other=0.0).to(tl.float32)
    if mean:
        g = g / tl.load(weight_sum_ptr).to(tl.float32)
    value = tl.where(counted, -g, 0.0)
    for start in range(0, C, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)
        hit = cols[None, :] == column[:, None]
        grad = tl.where(hit & counted[:, None], value[:, None], 0.0)
        at = (rows // S)[:, None] * C * S + cols[None, :] * S + (rows % S)[:, None]
        tl.store(out_ptr + at, grad.to(out_ptr.dtype.element_ty),
                 mask=inside[:, None] & (cols < C)[None, :])


# --- host side ------------------------------------------------------------------------------------------------

def _schema(overload: str) -> torch.FunctionSchema:
    packet, _, name = overload.partition(".")
    return getattr(getattr(torch.ops.aten, packet), name or "default")._schema


def _result(given: torch.Tensor | None, shape: Any, dtype: torch.dtype) -> torch.Tensor:
    """A fresh contiguous result, or the caller's `out=` when it needs no resize, cast or restride."""
    if given is None:
        return torch.empty(shape, dtype=dtype)
    if given.shape != torch.Size(shape) or given.dtype != dtype or not given.is_contiguous() or has_internal_overlap(given):
        raise Decline("out= needs a resize, a cast or a restride: ATen's")
    return given


def _reduction(value: Any) -> int:
    if value not in (NONE, MEAN, SUM):
        raise Decline("unknown reduction: ATen's error")
    return int(value)


def _elementwise_loss(loss: str, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, reduction: int,
                      out: torch.Tensor | None) -> torch.Tensor:
    """Shared by mse_loss and binary_cross_entropy: broadcast, flatten, one kernel, then the partial sums."""
    claim(x.dtype, FLOATS)
    if target.dtype != x.dtype or (weight is not None and weight.dtype != x.dtype):
        raise Decline("mixed dtypes")
    shape = torch.broadcast_shapes(x.shape, target.shape)
    weight_fits = weight is None or torch.broadcast_shapes(weight.shape, shape) == shape
    if loss == "bce" and (target.shape != x.shape or not weight_fits):
        raise Decline("bce needs target of the input's shape: ATen's error")
    n = 1
    for s in shape:
        n *= s
    if n == 0 or n > MAX_ELEMENTS:
        raise Decline("empty or too large")
    operands = [t.expand(shape).contiguous() for t in ([x, target] if weight is None else [x, target, weight])]
    result = _result(out, shape if reduction == NONE else (), x.dtype)
    chunk = BLOCK if reduction == NONE else cdiv(cdiv(n, MAX_PARTIALS), BLOCK) * BLOCK
    programs = cdiv(n, chunk)
    partial = torch.empty(programs, dtype=torch.float32)
    bad = torch.empty(programs, dtype=torch.int32)
    elementwise_loss_kernel[(programs,)](operands[0], operands[1], operands[-1], result, partial, bad, n, chunk,
                                         int(weight is not None), int(reduction != NONE), LOSS=loss, BLOCK=BLOCK)
    if bool(bad.any()):
        raise Decline("input outside [0, 1]: ATen's error")
    if reduction != NONE:
        finish_kernel[(1,)](partial, result, programs, 1.0 / n if reduction == MEAN else 1.0, BLOCK=MAX_PARTIALS)
    return result


def _mse_loss(overload: str):
    schema, out_name = _schema(overload), out_argument(_schema(overload))

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        return _elementwise_loss("mse", bound["self"], bound["target"], None, _reduction(bound["reduction"]),
                                 bound.get(out_name) if out_name else None)

    return wrapper


def _bce(overload: str):
    schema, out_name = _schema(overload), out_argument(_schema(overload))

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        return _elementwise_loss("bce", bound["self"], bound["target"], bound.get("weight"), _reduction(bound["reduction"]),
                                 bound.get(out_name) if out_name else None)

    return wrapper


def _loss_backward(overload: str, loss: str):
    """grad_input of mse_loss or binary_cross_entropy, from the flattened operands."""
    schema, out_name = _schema(overload), out_argument(_schema(overload))

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        grad, x, target, weight = bound["grad_output"], bound["self"], bound["target"], bound.get("weight")
        reduction = _reduction(bound["reduction"])
        claim(x.dtype, FLOATS)
        if any(t is not None and t.dtype != x.dtype for t in (grad, target, weight)):
            raise Decline("mixed dtypes")
        shapes = [t.shape for t in (grad, target, weight) if t is not None]
        if torch.broadcast_shapes(x.shape, *shapes) != x.shape or x.numel() == 0 or x.numel() > MAX_ELEMENTS:
            raise Decline("shapes: ATen's")
        out = _result(bound.get(out_name) if out_name else None, x.shape, x.dtype)
        scalar_grad = grad.numel() == 1
        operands = [t.expand(x.shape).contiguous() for t in ((x, target) if weight is None else (x, target, weight))]
        grad = grad.reshape(()) if scalar_grad else grad.expand(x.shape).contiguous()
        scale = (2.0 if loss == "mse" else 1.0) / (x.numel() if reduction == MEAN else 1)
        loss_gradient_kernel[(cdiv(x.numel(), BLOCK),)](operands[0], operands[1], grad, operands[-1], out, x.numel(),
                                                               scale, int(not scalar_grad), int(weight is not None),
                                                               LOSS=loss, BLOCK=BLOCK)
        return out

    return wrapper


def _nll_rows(x: torch.Tensor, target: torch.Tensor, spatial: bool) -> tuple[torch.Tensor, list[int], list[int]]:
    """(input, [N, C, S], [stride n, stride c, stride s]) of a (N, C), (C,) or (nll_loss2d) (N, C, H, W) input,
    checking the target's shape."""
    if spatial:
        if x.dim() != 4 or target.dim() != 3 or target.shape != (x.shape[0], *x.shape[2:]):
            raise Decline("nll_loss2d input/target shapes: ATen's error")
        if x.stride(2) != x.shape[3] * x.stride(3):
            x = x.contiguous()
        return x, [x.shape[0], x.shape[1], x.shape[2] * x.shape[3]], [x.stride(0), x.stride(1), x.stride(3)]
    if x.dim() == 2 and target.dim() == 1 and target.shape[0] == x.shape[0]:
        return x, [x.shape[0], x.shape[1], 1], [x.stride(0), x.stride(1), 0]
    if x.dim() == 1 and target.dim() == 0:
        return x, [1, x.shape[0], 1], [0, x.stride(0), 0]
    raise Decline("nll_loss input/target shapes: ATen's error")


def _nll_checks(x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor | None:
    claim(x.dtype, FLOATS)
    if target.dtype != torch.int64 or x.numel() == 0:
        raise Decline("target dtype or empty input")
    if weight is not None:
        if weight.dtype != x.dtype or weight.shape != (x.shape[0 if x.dim() == 1 else 1],):
            raise Decline("weight of another dtype or size: ATen's")
        return weight.contiguous()
    return None


def _nll_forward(overload: str, spatial: bool):
    schema = _schema(overload)

    def wrapper(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        bound = bind(schema, args, kwargs)
        x, target = bound["self"], bound["target"]
        weight = _nll_checks(x, target, bound.get("weight"))
        reduction = _reduction(bound["reduction"])
        x, (N, C, S), (sn, sc, ss) = _nll_rows(x, target, spatial)
        shape = target.shape if reduction == NONE else ()
        out = _result(bound.get("output"), shape, x.dtype)
        weight_sum = _result(bound.get("total_weight"), (), x.dtype)
        rows_per_program = BLOCK if reduction == NONE else max(N * S, 1)
        programs = cdiv(N * S, rows_per_program)
        bad = torch.empty(programs, dtype=torch.int32)
        target = target.contiguous()
        nll_forward_kernel[(programs,)](x, target, weight if weight is not None else x, out, weight_sum, bad, N * S, C, S, sn,
                                        sc, ss,
                                        int(bound["ignore_index"]), rows_per_program, int(weight is not None), reduction,
                                        BLOCK=BLOCK)
        if bool(bad.any()):
            raise Decline("target out of bounds: ATen's error")
        if reduction == NONE:
            weight_sum.zero_()
        return out, weight_sum

    return wrapper


def _nll_backward(overload: str, spatial: bool):
    schema, out_name = _schema(overload), out_argument(_schema(overload))

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        grad, x, target, weight_sum = bound["grad_output"], bound["self"], bound["target"], bound["total_weight"]
        weight = _nll_checks(x, target, bound.get("weight"))
        reduction = _reduction(bound["reduction"])
        _, (N, C, S), _ = _nll_rows(x, target, spatial)
        if grad.dtype != x.dtype or weight_sum.dtype != x.dtype or weight_sum.numel() != 1:
            raise Decline("dtypes")
        if grad.shape != (target.shape if reduction == NONE else ()):
            raise Decline("grad_output shape: ATen's error")
        out = _result(bound.get(out_name) if out_name else None, x.shape, x.dtype)
        grad = grad.contiguous()
        grad_stride = 1 if grad.dim() else 0
        block_r = 16
        programs = cdiv(N * S, block_r)
        bad = torch.empty(programs, dtype=torch.int32)
        nll_backward_kernel[(programs,)](grad, target.contiguous(), weight if weight is not None else x, weight_sum, out, bad,
                                         N * S, C, S, int(bound["ignore_index"]), grad_stride, int(weight is not None),
                                         int(reduction == MEAN), BLOCK_R=block_r, BLOCK_C=64)
        if bool(bad.any()):
            raise Decline("target out of bounds: ATen's error")
        return out

    return wrapper


for _packet, _spatial in (("nll_loss", False), ("nll_loss2d", True)):
    for _overload in (f"{_packet}_forward", f"{_packet}_forward.output"):
        register(_overload, _nll_forward(_overload, _spatial), FLOATS, CATEGORY)
    for _overload in (f"{_packet}_backward", f"{_packet}_backward.grad_input"):
        register(_overload, _nll_backward(_overload, _spatial), FLOATS, CATEGORY)
for _overload in ("mse_loss", "mse_loss.out"):
    register(_overload, _mse_loss(_overload), FLOATS, CATEGORY)
for _overload in ("binary_cross_entropy", "binary_cross_entropy.out"):
    register(_overload, _bce(_overload), FLOATS, CATEGORY)
for _overload, _loss_name in [("mse_loss_backward", "mse"), ("mse_loss_backward.grad_input", "mse"),
                              ("binary_cross_entropy_backward", "bce"), ("binary_cross_entropy_backward.grad_input", "bce")]:
    register(_overload, _loss_backward(_overload, _loss_name), FLOATS, CATEGORY)
