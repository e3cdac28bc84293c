"""Elementwise math, comparisons, logic, where/clamp/masked_fill and friends, as tables of math functions.

Each entry is one `@triton.jit` math function run by a generic kernel of `pointwise.py`, plus the aten
overloads it serves. Transcendental functions go through `libdevice` (CUDA's on a GPU, the C library
here) for accuracy on every device; integer semantics follow ATen (wrapping, C truncation where ATen's
is the same, Python-style floor/remainder for floats).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND as Promotion
from triton.language.extra import libdevice

from tilebridge.ops.pointwise import Pointwise, register_pointwise, register_unary_table, scalar_number
from tilebridge.ops.registry import ALL, FLOATS, INTEGERS, Decline

NUMBERS = FLOATS | INTEGERS
CATEGORY = "elementwise"
INT_TO_FLOAT = Promotion.INT_TO_FLOAT
ALWAYS_BOOL = Promotion.ALWAYS_BOOL


# --- unary math: x -> y ------------------------------------------------------------------------------------
# Written as ordinary jit functions with the kernel's signature; `p0..p2` carry Scalar arguments.

@triton.jit
def exp(x, p0, p1, p2):
    return libdevice.exp(x)


@triton.jit
def exp2(x, p0, p1, p2):
    return libdevice.exp2(x)


@triton.jit
def expm1(x, p0, p1, p2):
    return libdevice.expm1(x)


@triton.jit
def log(x, p0, p1, p2):
    return libdevice.log(x)


@triton.jit
def log2(x, p0, p1, p2):
    return libdevice.log2(x)


@triton.jit
def log10(x, p0, p1, p2):
    return libdevice.log10(x)


@triton.jit
def log1p(x, p0, p1, p2):
    return libdevice.log1p(x)


@triton.jit
def sqrt(x, p0, p1, p2):
    return tl.sqrt_rn(x)


@triton.jit
def rsqrt(x, p0, p1, p2):
    return 1.0 / tl.sqrt_rn(x)


@triton.jit
def sin(x, p0, p1, p2):
    return libdevice.sin(x)


@triton.jit
def cos(x, p0, p1, p2):
    return libdevice.cos(x)


@triton.jit
def tan(x, p0, p1, p2):
    return libdevice.tan(x)


@triton.jit
def asin(x, p0, p1, p2):
    return libdevice.asin(x)


@triton.jit
def acos(x, p0, p1, p2):
    return libdevice.acos(x)


@triton.jit
def atan(x, p0, p1, p2):
    return libdevice.atan(x)


@triton.jit
def sinh(x, p0, p1, p2):
    return libdevice.sinh(x)


@triton.jit
def cosh(x, p0, p1, p2):
    return libdevice.cosh(x)


@triton.jit
def tanh(x, p0, p1, p2):
    return libdevice.tanh(x)


@triton.jit
def asinh(x, p0, p1, p2):
    return libdevice.asinh(x)


@triton.jit
def acosh(x, p0, p1, p2):
    return libdevice.acosh(x)


@triton.jit
def atanh(x, p0, p1, p2):
    return libdevice.atanh(x)


@triton.jit
def erf(x, p0, p1, p2):
    return libdevice.erf(x)


@triton.jit
def erfc(x, p0, p1, p2):
    return libdevice.erfc(x)


@triton.jit
def sigmoid(x, p0, p1, p2):
    return 1.0 / (1.0 + libdevice.exp(-x))


@triton.jit
def reciprocal(x, p0, p1, p2):
    return 1.0 / x


@triton.jit
def neg(x, p0, p1, p2):
    return x * -1  # Triton's -x is 0 - x, which makes -0.0 of 0.0 +0.0; ATen's neg keeps the sign flip


@triton.jit
def absolute(x, p0, p1, p2):
    return tl.abs(x)


@triton.jit
def floor(x, p0, p1, p2):
    return libdevice.floor(x)


@triton.jit
def ceil(x, p0, p1, p2):
    return libdevice.ceil(x)


@triton.jit
def round_half_even(x, p0, p1, p2):
    return libdevice.rint(x)


@triton.jit
def trunc(x, p0, p1, p2):
    return libdevice.trunc(x)


@triton.jit
def frac(x, p0, p1, p2):
    return x - libdevice.trunc(x)


@triton.jit
def sign(x, p0, p1, p2):
    return (x > 0).to(x.dtype) - (x < 0).to(x.dtype)


@triton.jit
def bitwise_not(x, p0, p1, p2):
    return ~x


@triton.jit
def logical_not(x, p0, p1, p2):
    return x == 0


@triton.jit
def isnan(x, p0, p1, p2):
    return x != x


@triton.jit
def isinf(x, p0, p1, p2):
    return tl.abs(x) == float("inf")


@triton.jit
def signbit(x, p0, p1, p2):
    return (x < 0) | ((x == 0) & (1.0 / x < 0))


@triton.jit
def deg2rad(x, p0, p1, p2):
    return x * 0.017453292519943295


@triton.jit
def rad2deg(x, p0, p1, p2):
    return x * 57.29577951308232


@triton.jit
def nan_to_num(x, p0, p1, p2):
    y = tl.where(x != x, p0, x)
    y = tl.where(x == float("inf"), p1, y)
    return tl.where(x == -float("inf"), p2, y)


@triton.jit
def clamp_both(x, p0, p1, p2):
    return tl.minimum(tl.maximum(x, p0, propagate_nan=tl.PropagateNan.ALL), p1, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def clamp_low(x, p0, p1, p2):
    return tl.maximum(x, p0, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def clamp_high(x, p0, p1, p2):
    return tl.minimum(x, p1, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def threshold(x, p0, p1, p2):
    return tl.where(x <= p0, p1, x)


def _nan_to_num_params(bound: dict, compute: torch.dtype) -> list:
    """ATen's defaults: NaN -> 0, +inf/-inf -> the largest/lowest finite value of the *result* dtype."""
    info = torch.finfo(bound["self"].dtype)
    nan, posinf, neginf = bound.get("nan"), bound.get("posinf"), bound.get("neginf")
    return [0.0 if nan is None else nan, info.max if posinf is None else posinf, info.min if neginf is None else neginf]


def _clamp_select(bound: dict):
    low, high = bound.get("min"), bound.get("max")
    if low is None and high is None:
        raise Decline("clamp without bounds is ATen's error")
    return clamp_both if low is not None and high is not None else (clamp_low if low is not None else clamp_high)


def _clamp_params(bound: dict, compute: torch.dtype) -> list:
    return [0 if bound.get(name) is None else scalar_number(bound[name]) for name in ("min", "max")]


UNARY = [  # (math, dtypes claimed, promotion, aten overloads)
    *[(fn, ALL, INT_TO_FLOAT, f"{name} {name}.out {name}_")
      for name, fn in [("exp", exp), ("exp2", exp2), ("expm1", expm1), ("log", log), ("log2", log2), ("log10", log10),
                       ("log1p", log1p), ("sqrt", sqrt), ("rsqrt", rsqrt), ("sin", sin), ("cos", cos), ("tan", tan),
                       ("asin", asin), ("acos", acos), ("atan", atan), ("sinh", sinh), ("cosh", cosh),
                       ("tanh", tanh), ("asinh", asinh), ("acosh", acosh), ("atanh", atanh), ("erf", erf),
                       ("erfc", erfc), ("sigmoid", sigmoid), ("reciprocal", reciprocal), ("deg2rad", deg2rad),
                       ("rad2deg", rad2deg)]],
    (neg, NUMBERS, Promotion.DEFAULT, "neg neg.out neg_"),
    (absolute, NUMBERS, Promotion.DEFAULT, "abs abs.out abs_"),
    (sign, NUMBERS, Promotion.DEFAULT, "sign sign.out sign_ sgn sgn.out sgn_"),
    (floor, FLOATS, Promotion.DEFAULT, "floor floor.out floor_"),
    (ceil, FLOATS, Promotion.DEFAULT, "ceil ceil.out ceil_"),
    (round_half_even, FLOATS, Promotion.DEFAULT, "round round.out round_"),
    (trunc, FLOATS, Promotion.DEFAULT, "trunc trunc.out trunc_"),
    (frac, FLOATS, Promotion.DEFAULT, "frac frac.out frac_"),
    (bitwise_not, INTEGERS, Promotion.DEFAULT, "bitwise_not bitwise_not.out bitwise_not_"),
    (logical_not, ALL, ALWAYS_BOOL, "logical_not logical_not.out"),
    (isnan, FLOATS, ALWAYS_BOOL, "isnan"),
    (isinf, FLOATS, ALWAYS_BOOL, "isinf"),
    (signbit, FLOATS, ALWAYS_BOOL, "signbit signbit.out"),
]

register_unary_table(CATEGORY, UNARY)

register_pointwise(CATEGORY, Pointwise(nan_to_num, FLOATS, prepare=_nan_to_num_params), "nan_to_num nan_to_num.out nan_to_num_")
register_pointwise(CATEGORY, Pointwise(clamp_both, NUMBERS, promote_over=("self", "min", "max"), select=_clamp_select,
                                       prepare=_clamp_params), "clamp clamp.out clamp_")
register_pointwise(CATEGORY, Pointwise(clamp_low, NUMBERS, promote_over=("self", "min"), params=("min",)),
                   "clamp_min clamp_min.out clamp_min_")
register_pointwise(CATEGORY, Pointwise(clamp_high, NUMBERS, promote_over=("self", "max"), prepare=lambda b, c: [0, b["max"]]),
                   "clamp_max clamp_max.out clamp_max_")
register_pointwise(CATEGORY, Pointwise(threshold, NUMBERS, params=("threshold", "value"), promote_over=("self",)),
                   "threshold threshold.out threshold_")

