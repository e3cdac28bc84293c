"""Binary and ternary elementwise operators: arithmetic, comparisons, logic, where, masked_fill, lerp, addcmul.

Math functions take `(a, b, p0, p1, p2)` (or `(a, b, c, p0, p1)`) in the compute dtype; the generic
kernels of `pointwise.py` broadcast through strides, so a Python scalar is a 0-dim tensor of stride 0.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND as Promotion
from triton.language.extra import libdevice

from tilebridge.ops.pointwise import Pointwise, register_pointwise, scalar_number
from tilebridge.ops.registry import ALL, BOOL, FLOATS, INTEGERS, Decline

NUMBERS = FLOATS | INTEGERS
CATEGORY = "elementwise"


@triton.jit
def add(a, b, p0, p1, p2):
    return a + b * p0


@triton.jit
def sub(a, b, p0, p1, p2):
    return a - b * p0


@triton.jit
def rsub(a, b, p0, p1, p2):
    return b - a * p0


@triton.jit
def mul(a, b, p0, p1, p2):
    return a * b


@triton.jit
def div(a, b, p0, p1, p2):
    return a / b


@triton.jit
def div_trunc(a, b, p0, p1, p2):
    return libdevice.trunc(a / b)


@triton.jit
def div_floor(a, b, p0, p1, p2):
    """Python's floor division for floats, as ATen computes it: from fmod, so a // b * b + a % b == a."""
    remainder = libdevice.fmod(a, b)
    quotient = (a - remainder) / b
    quotient = tl.where((remainder != 0) & ((b < 0) != (remainder < 0)), quotient - 1.0, quotient)
    floored = libdevice.floor(quotient)
    floored = tl.where(quotient - floored > 0.5, floored + 1.0, floored)
    floored = tl.where(quotient == 0, libdevice.copysign(quotient * 0.0, a / b), floored)
    return tl.where(b == 0, a / b, floored)


@triton.jit
def remainder(a, b, p0, p1, p2):
    r = libdevice.fmod(a, b)
    return tl.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


@triton.jit
def fmod(a, b, p0, p1, p2):
    return libdevice.fmod(a, b)


@triton.jit
def maximum(a, b, p0, p1, p2):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def minimum(a, b, p0, p1, p2):
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def fmax(a, b, p0, p1, p2):
    return tl.where(a != a, b, tl.where(b != b, a, tl.maximum(a, b)))


@triton.jit
def fmin(a, b, p0, p1, p2):
    return tl.where(a != a, b, tl.where(b != b, a, tl.minimum(a, b)))


@triton.jit
def power(a, b, p0, p1, p2):
    return libdevice.pow(a, b)


@triton.jit
def atan2(a, b, p0, p1, p2):
    return libdevice.atan2(a, b)


@triton.jit
def hypot(a, b, p0, p1, p2):
    return libdevice.hypot(a, b)


@triton.jit
def copysign(a, b, p0, p1, p2):
    return libdevice.copysign(a, b)


@triton.jit
def xlogy(a, b, p0, p1, p2):
    return tl.where(b != b, b, tl.where(a == 0, 0.0, a * libdevice.log(b)))


@triton.jit
def logaddexp(a, b, p0, p1, p2):
    high = tl.maximum(a, b)
    low = tl.minimum(a, b)
    same_inf = (a == b) & (tl.abs(a) == float("inf"))
    return tl.where(same_inf, a, high + libdevice.log1p(libdevice.exp(low - high)))


@triton.jit
def logaddexp2(a, b, p0, p1, p2):
    high = tl.maximum(a, b)
    low = tl.minimum(a, b)
    same_inf = (a == b) & (tl.abs(a) == float("inf"))
    return tl.where(same_inf, a, high + libdevice.log1p(libdevice.exp2(low - high)) * 1.4426950408889634)


@triton.jit
def eq(a, b, p0, p1, p2):
    return a == b


@triton.jit
def ne(a, b, p0, p1, p2):
    return a != b


@triton.jit
def lt(a, b, p0, p1, p2):
    return a < b


@triton.jit
def le(a, b, p0, p1, p2):
    return a <= b


@triton.jit
def gt(a, b, p0, p1, p2):
    return a > b


@triton.jit
def ge(a, b, p0, p1, p2):
    return a >= b


@triton.jit
def logical_and(a, b, p0, p1, p2):
    return (a != 0) & (b != 0)


@triton.jit
def logical_or(a, b, p0, p1, p2):
    return (a != 0) | (b != 0)


@triton.jit
def logical_xor(a, b, p0, p1, p2):
    return (a != 0) != (b != 0)


@triton.jit
def bitwise_and(a, b, p0, p1, p2):
    return a & b


@triton.jit
def bitwise_or(a, b, p0, p1, p2):
    return a | b


@triton.jit
def bitwise_xor(a, b, p0, p1, p2):
    return a ^ b


@triton.jit
def masked_fill(a, mask, p0, p1, p2):
    return tl.where(mask != 0, p0, a)


@triton.jit
def lerp_by(a, b, weight):
    """a + weight (b - a), computed from the nearer end (as ATen does) so that weight 1 gives b exactly."""
    difference = b - a
    return tl.where(tl.abs(weight) < 0.5, a + weight * difference, b - difference * (1.0 - weight))


@triton.jit
def lerp(a, b, p0, p1, p2):
    return lerp_by(a, b, p0)


# --- ternary: (a, b, c, p0, p1) ----------------------------------------------------------------------------

@triton.jit
def where(condition, a, b, p0, p1):
    return tl.where(condition != 0, a, b)


@triton.jit
def lerp_tensor(a, b, weight, p0, p1):
    return lerp_by(a, b, weight)


@triton.jit
def addcmul(a, b, c, p0, p1):
    return a + p0 * (b * c)


@triton.jit
def addcdiv(a, b, c, p0, p1):
    return a + p0 * (b / c)


@triton.jit
def clamp_tensor(x, low, high, p0, p1):
    return tl.minimum(tl.maximum(x, low, propagate_nan=tl.PropagateNan.ALL), high, propagate_nan=tl.PropagateNan.ALL)


def _div_mode_select(bound: dict):
    return {None: div, "trunc": div_trunc, "floor": div_floor}[bound.get("rounding_mode")]


def _bool_mask(bound: dict) -> None:
    if not isinstance(bound.get("mask"), torch.Tensor) or bound["mask"].dtype != torch.bool:
        raise Decline("mask must be a bool tensor (ATen raises otherwise)")


def _bool_condition(bound: dict) -> None:
    if not isinstance(bound.get("condition"), torch.Tensor) or bound["condition"].dtype != torch.bool:
        raise Decline("condition must be a bool tensor")


def _fill_value(bound: dict, compute: torch.dtype) -> list:
    value = scalar_number(bound["value"])
    if isinstance(bound["value"], torch.Tensor) and bound["value"].dim() != 0:
        raise Decline("masked_fill value must be 0-dim (ATen raises otherwise)")
    if isinstance(value, complex):
        raise Decline("a complex fill value (ATen's error on a real tensor)")
    if not compute.is_floating_point and not float(value).is_integer():
        raise Decline("fractional fill of an integer tensor")
    return [value]


def _no_bool(bound: dict) -> None:
    if any(isinstance(v, torch.Tensor) and v.dtype == torch.bool for v in (bound["self"], bound["other"])):
        raise Decline("subtraction of bool tensors is ATen's error")


def _both_bounds(bound: dict) -> None:
    if bound.get("min") is None or bound.get("max") is None:
        raise Decline("clamp.Tensor with one bound")


SELF_OTHER = ("self", "other")
INT_TO_FLOAT = Promotion.INT_TO_FLOAT
ALWAYS_BOOL = Promotion.ALWAYS_BOOL

BINARY = [  # (math, dtypes claimed, promotion, Scalar params, aten overloads)
    (add, NUMBERS, Promotion.DEFAULT, ("alpha",), "add.Tensor add.out add_.Tensor add.Scalar add_.Scalar"),
    (mul, NUMBERS, Promotion.DEFAULT, (), "mul.Tensor mul.out mul_.Tensor mul.Scalar mul_.Scalar"),
    (div, ALL, INT_TO_FLOAT, (), "div.Tensor div.out div_.Tensor div.Scalar div_.Scalar"),
    (remainder, FLOATS, Promotion.DEFAULT, (), "remainder.Tensor remainder.Tensor_out remainder_.Tensor "
                                               "remainder.Scalar remainder_.Scalar remainder.Scalar_Tensor"),
    (fmod, FLOATS, Promotion.DEFAULT, (), "fmod.Tensor fmod.Tensor_out fmod_.Tensor fmod.Scalar fmod_.Scalar"),
    # ATen rounds a 16-bit quotient to its dtype before flooring it: those dtypes stay with ATen.
    (div_floor, {torch.float32}, Promotion.DEFAULT, (), "floor_divide floor_divide.out floor_divide_.Tensor"),
    (maximum, NUMBERS, Promotion.DEFAULT, (), "maximum maximum.out"),
    (minimum, NUMBERS, Promotion.DEFAULT, (), "minimum minimum.out"),
    (fmax, FLOATS, Promotion.DEFAULT, (), "fmax fmax.out"),
    (fmin, FLOATS, Promotion.DEFAULT, (), "fmin fmin.out"),
    (atan2, ALL, INT_TO_FLOAT, (), "atan2 atan2.out atan2_"),
    (hypot, FLOATS, Promotion.DEFAULT, (), "hypot hypot.out hypot_"),
    (copysign, ALL, INT_TO_FLOAT, (), "copysign.Tensor copysign.out copysign_.Tensor"),
    (xlogy, ALL, INT_TO_FLOAT, (), "xlogy.Tensor xlogy.OutTensor xlogy_.Tensor"),
    (logaddexp, FLOATS, Promotion.DEFAULT, (), "logaddexp logaddexp.out"),
    (logaddexp2, FLOATS, Promotion.DEFAULT, (), "logaddexp2 logaddexp2.out"),
    (logical_and, ALL, ALWAYS_BOOL, (), "logical_and logical_and.out"),
    (logical_or, ALL, ALWAYS_BOOL, (), "logical_or logical_or.out"),
    (logical_xor, ALL, ALWAYS_BOOL, (), "logical_xor logical_xor.out"),
    (bitwise_and, INTEGERS | BOOL, Promotion.DEFAULT, (), "bitwise_and.Tensor bitwise_and.Tensor_out bitwise_and_.Tensor"),
    (bitwise_or, INTEGERS | BOOL, Promotion.DEFAULT, (), "bitwise_or.Tensor bitwise_or.Tensor_out bitwise_or_.Tensor"),
    (bitwise_xor, INTEGERS | BOOL, Promotion.DEFAULT, (), "bitwise_xor.Tensor bitwise_xor.Tensor_out bitwise_xor_.Tensor"),
    *[(fn, ALL, ALWAYS_BOOL, (), f"{name}.Tensor {name}.Scalar {name}.Tensor_out {name}.Scalar_out")
      for name, fn in [("eq", eq), ("ne", ne), ("lt", lt), ("le", le), ("gt", gt), ("ge", ge)]],
]

for _fn, _dtypes, _kind, _params, _overloads in BINARY:
    register_pointwise(CATEGORY, Pointwise(_fn, _dtypes, tensors=SELF_OTHER, params=_params, kind=_kind), _overloads)

register_pointwise(CATEGORY, Pointwise(sub, NUMBERS, tensors=SELF_OTHER, params=("alpha",), check=_no_bool),
                   "sub.Tensor sub.out sub_.Tensor sub.Scalar sub_.Scalar")
register_pointwise(CATEGORY, Pointwise(rsub, NUMBERS, tensors=SELF_OTHER, params=("alpha",), check=_no_bool),
                   "rsub.Tensor rsub.Scalar")
register_pointwise(CATEGORY, Pointwise(div, {torch.float32}, tensors=SELF_OTHER, select=_div_mode_select),
                   "div.Tensor_mode div.out_mode div_.Tensor_mode")
register_pointwise(CATEGORY, Pointwise(power, FLOATS, tensors=("self", "exponent")),
                   "pow.Tensor_Tensor pow.Tensor_Tensor_out pow_.Tensor pow.Tensor_Scalar pow.Tensor_Scalar_out "
                   "pow_.Scalar pow.Scalar pow.Scalar_out")
register_pointwise(CATEGORY, Pointwise(masked_fill, ALL, tensors=("self", "mask"), promote_over=("self",), check=_bool_mask,
                                       prepare=_fill_value), "masked_fill.Scalar masked_fill_.Scalar masked_fill.Tensor "
                                                             "masked_fill_.Tensor")
register_pointwise(CATEGORY, Pointwise(lerp, FLOATS, tensors=("self", "end"), params=("weight",)),
                   "lerp.Scalar lerp.Scalar_out lerp_.Scalar")
register_pointwise(CATEGORY, Pointwise(lerp_tensor, FLOATS, tensors=("self", "end", "weight")),
                   "lerp.Tensor lerp.Tensor_out lerp_.Tensor")
register_pointwise(CATEGORY, Pointwise(where, ALL, tensors=("condition", "self", "other"), promote_over=SELF_OTHER,
                                       check=_bool_condition), "where.self where.self_out")
register_pointwise(CATEGORY, Pointwise(addcmul, NUMBERS, tensors=("self", "tensor1", "tensor2"), params=("value",)),
                   "addcmul addcmul.out addcmul_")
register_pointwise(CATEGORY, Pointwise(addcdiv, FLOATS, tensors=("self", "tensor1", "tensor2"), params=("value",)),
                   "addcdiv addcdiv.out addcdiv_")
register_pointwise(CATEGORY, Pointwise(clamp_tensor, NUMBERS, tensors=("self", "min", "max"), check=_both_bounds),
                   "clamp.Tensor clamp.Tensor_out clamp_.Tensor")
