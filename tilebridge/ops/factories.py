"""Factories and copies: `arange`, `scalar_tensor`, `*_like` / `new_*` fills, `clone`, `_to_copy`.

Models call these between their real work (position ids, attention-mask constants, dtype casts, the
ones of a backward pass); a device has to answer them like any other op. Fills and ranges are one
kernel, `out[i] = start + i * step` (a fill is a step of 0); copies and casts are the pointwise
kernel with the identity as its math, which already reads any strides and converts any dtype.
Arguments that only matter elsewhere (layout, device, pinned memory) are checked and declined
when they ask for something other than a strided tensor on the device the library serves; float64
is left to ATen, as in the rest of the library.
"""
from __future__ import annotations

import math
import struct
from numbers import Number
from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import OPMATH, _dense, bind, launch
from tilebridge.ops.registry import BOOL, FLOATS, INTEGERS, Decline, register, served_device
from tilebridge.ops.strided import BLOCK

CATEGORY = "factories"
DTYPES = FLOATS | INTEGERS | BOOL
EXACT_IN_FP32 = 1 << 24  # integers up to here are exact in float32: a float range of integer steps is exact


@launchable
@triton.jit(do_not_specialize=["n", "start", "step"])
def range_kernel(out_ptr, n, start, step, BLOCK: tl.constexpr):
    """out[i] = start + i * step over a contiguous output (a fill when step is 0)."""
    index = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + index, (start + index * step).to(out_ptr.dtype.element_ty), mask=index < n)


@triton.jit
def identity(x, p0, p1, p2):
    return x


def _fill_range(out: torch.Tensor, start: Number, step: Number) -> torch.Tensor:
    """Write start + i * step into every element of the contiguous `out`."""
    if isinstance(start, complex) or isinstance(step, complex):
        raise Decline("complex values")
    if not out.dtype.is_floating_point and out.dtype != torch.bool and not float(start).is_integer():
        raise Decline("a fractional value into an integer tensor: ATen's conversion")
    if out.dtype.is_floating_point and isinstance(start, float) and start == start and (
            math.copysign(1.0, start) < 0 and start == 0 or (abs(start) != math.inf and float(struct_f32(start)) != start
                                                               and out.dtype != torch.float32)):
        raise Decline("-0.0, or a value a float32 parameter would round before the 16-bit rounding")
    n = out.numel()
    if n:
        if out.dtype.is_floating_point:
            start, step = float(start), float(step)
        elif out.dtype == torch.bool:
            start, step = int(bool(start)), 0
        else:
            start, step = int(start), int(step)
        range_kernel[(cdiv(n, BLOCK),)](out, n, start, step, BLOCK=BLOCK)
    return out


def struct_f32(value: float) -> float:
    """`value` rounded to float32 (how a float kernel parameter arrives)."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.inf


def _served_device_only(bound: dict) -> None:
    """Decline what only another device, layout or pinned memory would mean (ATen raises or handles it)."""
    device = bound.get("device")
    if device is not None and torch.device(device).type != served_device():
        raise Decline("another device")
    if bound.get("layout") not in (None, torch.strided) or bound.get("pin_memory"):
        raise Decline("a layout or pinned memory")


def _dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in DTYPES:
        raise Decline(f"dtype {dtype}")
    return dtype


def _number(value: Any) -> Number:
    return value.item() if isinstance(value, torch.Tensor) else value


def _scalar_default(*values: Any) -> torch.dtype:
    """arange's and scalar_tensor's dtype when none is given: int64 for integers, the default float."""
    if all(isinstance(v, bool) for v in values):
        return torch.bool
    return torch.int64 if all(isinstance(v, int) for v in values) else torch.get_default_dtype()


def scalar_tensor(bound: dict) -> torch.Tensor:
    _served_device_only(bound)
    value = _number(bound["s"])
    dtype = _dtype(bound.get("dtype") or torch.get_default_dtype())
    if dtype.is_floating_point and isinstance(value, float) and value != value:
        return _fill_range(torch.empty((), dtype=dtype), float("nan"), 0.0)
    return _fill_range(torch.empty((), dtype=dtype), value, 0)


def arange(bound: dict) -> torch.Tensor:
    _served_device_only(bound)
    start, end, step = (_number(bound.get(k, d)) for k, d in (("start", 0), ("end", None), ("step", 1)))
    dtype = _dtype(bound.get("dtype") or _scalar_default(start, end, step))
    if dtype == torch.bool or not all(isinstance(v, (int, float)) for v in (start, end, step)) or step == 0:
        raise Decline("bool ranges, a zero step or non-real bounds: ATen's")
    if dtype.is_floating_point and not all(float(v).is_integer() and abs(v) < EXACT_IN_FP32 for v in (start, step)):
        raise Decline("fractional float ranges: ATen accumulates in double")
    length = int(torch.arange(start, end, step, dtype=torch.float64, device="meta").numel())
    if dtype.is_floating_point and abs(start) + abs(step) * length >= EXACT_IN_FP32:
        raise Decline("float range past float32's exact integers")
    return _fill_range(torch.empty(length, dtype=dtype), start, step)


def _like(bound: dict, value: Number) -> torch.Tensor:
    _served_device_only(bound)
    x = bound["self"]
    dtype = _dtype(bound.get("dtype") or x.dtype)
    memory_format = bound.get("memory_format")
    if memory_format not in (None, torch.preserve_format, torch.contiguous_format):
        raise Decline("a memory format")
    if memory_format in (None, torch.preserve_format) and not x.is_contiguous() and x.dim() > 1:
        raise Decline("a preserved non-contiguous layout: ATen's")
    return _fill_range(torch.empty(x.shape, dtype=dtype), value, 0)


def _new(bound: dict, value: Number) -> torch.Tensor:
    _served_device_only(bound)
    dtype = _dtype(bound.get("dtype") or bound["self"].dtype)
    return _fill_range(torch.empty(list(bound["size"]), dtype=dtype), value, 0)


def copy_as(bound: dict) -> torch.Tensor:
    """`_to_copy` and `clone`: the same values in a new tensor (of another dtype for `_to_copy`)."""
    _served_device_only(bound)
    x = bound["self"]  # non_blocking changes nothing: a copy on the host is finished when it returns
    dtype = _dtype(bound.get("dtype") or x.dtype)
    _dtype(x.dtype)
    memory_format = bound.get("memory_format")
    if memory_format in (None, torch.preserve_format) and _dense(x):
        out = torch.empty_like(x, dtype=dtype)
    elif memory_format in (None, torch.preserve_format, torch.contiguous_format):
        out = torch.empty(x.shape, dtype=dtype)
    else:
        raise Decline("a memory format")
    compute = dtype if dtype == x.dtype else OPMATH.get(dtype, dtype)
    if x.dtype.is_floating_point and not dtype.is_floating_point:
        compute = OPMATH.get(x.dtype, x.dtype)  # float -> int converts from the float (truncation), as ATen
    launch(identity, out, [x], [], compute)
    return out


FACTORIES = {
    "scalar_tensor": scalar_tensor,
    "arange": arange, "arange.start": arange, "arange.start_step": arange,
    "ones_like": lambda b: _like(b, 1), "zeros_like": lambda b: _like(b, 0),
    "full_like": lambda b: _like(b, _number(b["fill_value"])),
    "new_ones": lambda b: _new(b, 1), "new_zeros": lambda b: _new(b, 0),
    "new_full": lambda b: _new(b, _number(b["fill_value"])),
    "clone": copy_as, "_to_copy": copy_as,
}


def _wrapper(overload: str, build: Any):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        if "self" in bound and not isinstance(bound["self"], torch.Tensor):
            raise Decline("a wrapped number (the dispatcher hands it over as a Python number): ATen's")
        return build(bound)
    return wrapper


for _overload, _build in FACTORIES.items():
    register(_overload, _wrapper(_overload, _build), DTYPES, CATEGORY)
