"""More elementwise math: special functions (Bessel J and Y of orders 0 and 1, ...), shrinkage activations
and their backwards, shifts, heaviside.

Same scheme as `elementwise.py`: one `@triton.jit` math function per operator, run by the generic
kernels of `pointwise.py`, with the aten overloads it serves. Edge cases follow ATen's CPU kernels
(NaN in, NaN out; out-of-range shifts give 0 or the sign; logit's `eps=None` passes as -1).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND as Promotion
from triton.language.extra import libdevice

from tilebridge.ops.pointwise import Pointwise, register_pointwise, register_unary_table
from tilebridge.ops.registry import ALL, FLOATS, INTEGERS, Decline

CATEGORY = "special"
NUMBERS = FLOATS | INTEGERS
INT_TO_FLOAT = Promotion.INT_TO_FLOAT
PI = tl.constexpr(math.pi)


@triton.jit
def erfinv(x, p0, p1, p2):
    return libdevice.erfinv(x)


@triton.jit
def lgamma(x, p0, p1, p2):
    return libdevice.lgamma(x)


@triton.jit
def sinc(x, p0, p1, p2):
    product = x * PI
    return tl.where(x == 0, 1.0, libdevice.sin(product) / product)


@triton.jit
def angle(x, p0, p1, p2):
    return tl.where(x != x, x, tl.where(x < 0, PI, 0.0))


@triton.jit
def entr(x, p0, p1, p2):
    result = tl.where(x > 0, -x * libdevice.log(tl.where(x > 0, x, 1.0)), tl.where(x == 0, 0.0, -float("inf")))
    return tl.where(x != x, x, result)


@triton.jit
def isposinf(x, p0, p1, p2):
    return x == float("inf")


@triton.jit
def isneginf(x, p0, p1, p2):
    return x == -float("inf")


@triton.jit
def logit(x, p0, p1, p2):
    """p0 is eps, or -1 for none: then no clamping, so x outside [0, 1] gives NaN."""
    clamped = tl.where(p0 < 0, x, tl.minimum(tl.maximum(x, p0), 1.0 - p0))
    return libdevice.log(clamped / (1.0 - clamped))


@triton.jit
def logit_backward(grad, x, p0, p1, p2):
    outside = (x < p0) | (x > 1.0 - p0)
    unclamped_outside = (x < 0) | (x > 1)
    fill = tl.where(p0 < 0, float("nan"), 0.0)
    return tl.where(tl.where(p0 < 0, unclamped_outside, outside), fill, grad / (x * (1.0 - x)))


@triton.jit
def hardshrink(x, p0, p1, p2):
    return tl.where((x >= -p0) & (x <= p0), 0.0, x)


@triton.jit
def softshrink(x, p0, p1, p2):
    return tl.where(x > p0, x - p0, tl.where(x < -p0, x + p0, x * 0.0))


@triton.jit
def shrink_backward(grad, x, p0, p1, p2):
    return tl.where((x >= -p0) & (x <= p0), 0.0, grad)


@triton.jit
def xlog1py(x, y, p0, p1, p2):
    return tl.where(y != y, y, tl.where(x == 0, 0.0, x * libdevice.log1p(y)))


@triton.jit
def nextafter(a, b, p0, p1, p2):
    return libdevice.nextafter(a, b)


@triton.jit
def heaviside(x, values, p0, p1, p2):
    return tl.where(x == 0, values, tl.where(x > 0, 1, 0).to(values.dtype))


@triton.jit
def left_shift(a, b, p0, p1, p2):
    """ATen: a shift by a negative count or by the bit width (p0) or more gives 0."""
    bad = (b < 0) | (b >= p0)
    return tl.where(bad, 0, a << tl.where(bad, 0, b).to(a.dtype))


@triton.jit
def right_shift(a, b, p0, p1, p2):
    """ATen: a shift by a negative count or by the bit width (p0) or more gives the sign (0 or -1)."""
    bad = (b < 0) | (b >= p0)
    return a >> tl.where(bad, p0 - 1, b).to(a.dtype)


def _logit_eps(bound: dict, compute: torch.dtype) -> list:
    eps = bound.get("eps")
    return [-1.0 if eps is None else float(eps)]


def _same_dtypes(names: tuple[str, ...]):
    """heaviside raises on mixed dtypes; leave that error to ATen."""
    def check(bound: dict) -> None:
        values = [bound[n] for n in names]
        if not all(isinstance(v, torch.Tensor) for v in values) or len({v.dtype for v in values}) != 1:
            raise Decline("mixed dtypes or a number: ATen's")
    return check


def _nonnegative_lambd(bound: dict) -> None:
    """softshrink raises for a negative lambda; ATen's error to raise."""
    lambd = bound.get("lambd", 0.5)
    if float(lambd) < 0 or lambd != lambd:
        raise Decline("negative lambd: ATen's error")


def _bit_width(bound: dict, compute: torch.dtype) -> list:
    """The dtype's bit width, as p0: shifts by it or more are out of range."""
    return [bound["self"].dtype.itemsize * 8]


def _shift_check(bound: dict) -> None:
    values = [bound.get("self"), bound.get("other")]
    if not all(isinstance(v, torch.Tensor) for v in values):
        raise Decline("a number operand: ATen's")


# ATen's Bessel kernels give NaN at +-inf (the C library gives the limit, 0): kept as ATen has it.
@triton.jit
def bessel_j0(x, p0, p1, p2):
    return tl.where(tl.abs(x) == float("inf"), float("nan"), libdevice.j0(x))


@triton.jit
def bessel_j1(x, p0, p1, p2):
    return tl.where(tl.abs(x) == float("inf"), float("nan"), libdevice.j1(x))


@triton.jit
def bessel_y0(x, p0, p1, p2):
    return tl.where(x == float("inf"), float("nan"), libdevice.y0(x))


@triton.jit
def bessel_y1(x, p0, p1, p2):
    return tl.where(x == float("inf"), float("nan"), libdevice.y1(x))


NOT_HALF = ALL - {torch.float16, torch.bfloat16}  # ATen's Bessel kernels reject 16-bit floats: its error stands

UNARY = [  # (math, dtypes, promotion, overloads)
    (erfinv, ALL, INT_TO_FLOAT, "erfinv erfinv.out erfinv_"),
    (lgamma, ALL, INT_TO_FLOAT, "lgamma lgamma.out lgamma_"),
    (sinc, ALL, INT_TO_FLOAT, "sinc sinc.out sinc_"),
    (angle, FLOATS, INT_TO_FLOAT, "angle angle.out"),
    (entr, ALL, INT_TO_FLOAT, "special_entr special_entr.out"),
    (isposinf, FLOATS, Promotion.ALWAYS_BOOL, "isposinf isposinf.out"),
    (isneginf, FLOATS, Promotion.ALWAYS_BOOL, "isneginf isneginf.out"),
    (bessel_j0, NOT_HALF, INT_TO_FLOAT, "special_bessel_j0 special_bessel_j0.out"),
    (bessel_j1, NOT_HALF, INT_TO_FLOAT, "special_bessel_j1 special_bessel_j1.out"),
    (bessel_y0, NOT_HALF, INT_TO_FLOAT, "special_bessel_y0 special_bessel_y0.out"),
    (bessel_y1, NOT_HALF, INT_TO_FLOAT, "special_bessel_y1 special_bessel_y1.out"),
]
register_unary_table(CATEGORY, UNARY)

register_pointwise(CATEGORY, Pointwise(logit, FLOATS, prepare=_logit_eps), "logit logit.out logit_")
register_pointwise(CATEGORY, Pointwise(logit_backward, FLOATS, tensors=("grad_output", "self"), prepare=_logit_eps),
                   "logit_backward logit_backward.grad_input")
register_pointwise(CATEGORY, Pointwise(hardshrink, FLOATS, params=("lambd",)), "hardshrink hardshrink.out")
register_pointwise(CATEGORY, Pointwise(softshrink, FLOATS, params=("lambd",), check=_nonnegative_lambd),
                   "softshrink softshrink.out")
register_pointwise(CATEGORY, Pointwise(shrink_backward, FLOATS, tensors=("grad_out", "self"), params=("lambd",)),
                   "hardshrink_backward hardshrink_backward.grad_input")
register_pointwise(CATEGORY, Pointwise(shrink_backward, FLOATS, tensors=("grad_output", "self"), params=("lambd",)),
                   "softshrink_backward softshrink_backward.grad_input")
register_pointwise(CATEGORY, Pointwise(xlog1py, ALL, tensors=("self", "other"), kind=INT_TO_FLOAT),
                   "special_xlog1py special_xlog1py.out")
register_pointwise(CATEGORY, Pointwise(nextafter, frozenset({torch.float32}), tensors=("self", "other")),
                   "nextafter nextafter.out nextafter_")
register_pointwise(CATEGORY, Pointwise(heaviside, NUMBERS, tensors=("self", "values"),
                                       check=_same_dtypes(("self", "values"))), "heaviside heaviside.out heaviside_")
_SHIFTS = {left_shift: "bitwise_left_shift.Tensor bitwise_left_shift.Tensor_out bitwise_left_shift_.Tensor "
                       "__lshift__.Tensor __ilshift__.Tensor",
           right_shift: "bitwise_right_shift.Tensor bitwise_right_shift.Tensor_out bitwise_right_shift_.Tensor "
                        "__rshift__.Tensor __irshift__.Tensor"}
for _fn, _overloads in _SHIFTS.items():
    register_pointwise(CATEGORY, Pointwise(_fn, INTEGERS, tensors=("self", "other"), check=_shift_check,
                                           prepare=_bit_width), _overloads)
