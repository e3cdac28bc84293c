"""Activation functions and their backward ops (what autograd calls), as pointwise math tables.

Forward math takes `(x, p0, p1, p2)`; backward math `(grad, x, p0, p1, p2)` where x is the forward
input (or its result, where the aten backward op takes the result). Formulas follow the derivatives
PyTorch documents; everything computes in fp32 for the 16-bit floats.
"""
from __future__ import annotations

import triton
import triton.language as tl
from triton.language.extra import libdevice

from tilebridge.ops.pointwise import Pointwise, register_pointwise
from tilebridge.ops.registry import FLOATS, INTEGERS, Decline

CATEGORY = "activations"
SQRT_1_2 = tl.constexpr(0.7071067811865476)
SQRT_2_PI = tl.constexpr(0.7978845608028654)   # sqrt(2 / pi)
INV_SQRT_2PI = tl.constexpr(0.3989422804014327)  # 1 / sqrt(2 pi)


@triton.jit
def relu(x, p0, p1, p2):
    return tl.where(x < 0, 0, x)  # NaN stays NaN, as ATen's clamp_min(x, 0)


@triton.jit
def gelu_erf(x, p0, p1, p2):
    return 0.5 * x * (1.0 + libdevice.erf(x * SQRT_1_2))


@triton.jit
def gelu_tanh(x, p0, p1, p2):
    return 0.5 * x * (1.0 + libdevice.tanh(SQRT_2_PI * (x + 0.044715 * x * x * x)))


@triton.jit
def silu(x, p0, p1, p2):
    return x / (1.0 + libdevice.exp(-x))


@triton.jit
def softplus_of(x, beta, threshold):
    return tl.where(x * beta > threshold, x, libdevice.log1p(libdevice.exp(x * beta)) / beta)


@triton.jit
def mish(x, p0, p1, p2):
    return x * libdevice.tanh(softplus_of(x, 1.0, 20.0))


@triton.jit
def softplus(x, p0, p1, p2):
    return softplus_of(x, p0, p1)


@triton.jit
def hardswish(x, p0, p1, p2):
    return x * tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0


@triton.jit
def hardsigmoid(x, p0, p1, p2):
    return tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0


@triton.jit
def hardtanh(x, p0, p1, p2):
    return tl.minimum(tl.maximum(x, p0, propagate_nan=tl.PropagateNan.ALL), p1, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def leaky_relu(x, p0, p1, p2):
    return tl.where(x > 0, x, x * p0)


@triton.jit
def elu(x, p0, p1, p2):
    """alpha = p0, scale = p1, input_scale = p2."""
    return tl.where(x > 0, x * p1, libdevice.expm1(x * p2) * p0 * p1)


# --- backward: (grad, x) -> grad_input -----------------------------------------------------------------------

@triton.jit
def threshold_backward(grad, x, p0, p1, p2):
    return tl.where(x <= p0, 0, grad)


@triton.jit
def sigmoid_backward(grad, y, p0, p1, p2):
    return grad * (1.0 - y) * y


@triton.jit
def tanh_backward(grad, y, p0, p1, p2):
    return grad * (1.0 - y * y)


@triton.jit
def gelu_erf_backward(grad, x, p0, p1, p2):
    cdf = 0.5 * (1.0 + libdevice.erf(x * SQRT_1_2))
    pdf = libdevice.exp(-0.5 * x * x) * INV_SQRT_2PI
    return grad * (cdf + x * pdf)


@triton.jit
def gelu_tanh_backward(grad, x, p0, p1, p2):
    inner = SQRT_2_PI * (x + 0.044715 * x * x * x)
    t = libdevice.tanh(inner)
    d_inner = SQRT_2_PI * (1.0 + 3.0 * 0.044715 * x * x)
    return grad * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner)


@triton.jit
def silu_backward(grad, x, p0, p1, p2):
    s = 1.0 / (1.0 + libdevice.exp(-x))
    return grad * s * (1.0 + x * (1.0 - s))


@triton.jit
def mish_backward(grad, x, p0, p1, p2):
    s = 1.0 / (1.0 + libdevice.exp(-x))
    t = libdevice.tanh(softplus_of(x, 1.0, 20.0))
    return grad * (t + x * s * (1.0 - t * t))


@triton.jit
def softplus_backward(grad, x, p0, p1, p2):
    z = libdevice.exp(x * p0)
    return tl.where(x * p0 > p1, grad, grad * z / (z + 1.0))


@triton.jit
def hardswish_backward(grad, x, p0, p1, p2):
    return tl.where(x < -3.0, 0.0, tl.where(x <= 3.0, grad * (x / 3.0 + 0.5), grad))


@triton.jit
def hardsigmoid_backward(grad, x, p0, p1, p2):
    return tl.where((x > -3.0) & (x < 3.0), grad / 6.0, 0.0)


@triton.jit
def hardtanh_backward(grad, x, p0, p1, p2):
    return tl.where((x <= p0) | (x >= p1), 0.0, grad)


@triton.jit
def leaky_relu_backward(grad, x, p0, p1, p2):
    return tl.where(x > 0, grad, grad * p0)


@triton.jit
def elu_backward_of_input(grad, x, p0, p1, p2):
    return tl.where(x <= 0, grad * p2 * p0 * p1 * libdevice.exp(x * p2), grad * p1)


@triton.jit
def elu_backward_of_result(grad, y, p0, p1, p2):
    return tl.where(y <= 0, grad * p2 * (y + p0 * p1), grad * p1)


GRAD_X = ("grad_output", "self")

FORWARD = [  # (math, dtypes, Scalar params, overloads)
    (relu, FLOATS | INTEGERS, (), "relu relu_"),
    (silu, FLOATS, (), "silu silu.out silu_"),
    (mish, FLOATS, (), "mish mish.out mish_"),
    (softplus, FLOATS, ("beta", "threshold"), "softplus softplus.out"),
    (hardswish, FLOATS, (), "hardswish hardswish.out hardswish_"),
    (hardsigmoid, FLOATS, (), "hardsigmoid hardsigmoid.out hardsigmoid_"),
    (hardtanh, FLOATS, ("min_val", "max_val"), "hardtanh hardtanh.out hardtanh_"),
    (leaky_relu, FLOATS, ("negative_slope",), "leaky_relu leaky_relu.out leaky_relu_"),
    (elu, FLOATS, ("alpha", "scale", "input_scale"), "elu elu.out elu_"),
]
BACKWARD = [  # (math, dtypes, tensor args, Scalar params, overloads)
    (threshold_backward, FLOATS | INTEGERS, GRAD_X, ("threshold",), "threshold_backward threshold_backward.grad_input"),
    (sigmoid_backward, FLOATS, ("grad_output", "output"), (), "sigmoid_backward sigmoid_backward.grad_input"),
    (tanh_backward, FLOATS, ("grad_output", "output"), (), "tanh_backward tanh_backward.grad_input"),
    (silu_backward, FLOATS, GRAD_X, (), "silu_backward silu_backward.grad_input"),
    (mish_backward, FLOATS, GRAD_X, (), "mish_backward"),
    (softplus_backward, FLOATS, GRAD_X, ("beta", "threshold"), "softplus_backward softplus_backward.grad_input"),
    (hardswish_backward, FLOATS, GRAD_X, (), "hardswish_backward"),
    (hardsigmoid_backward, FLOATS, GRAD_X, (), "hardsigmoid_backward hardsigmoid_backward.grad_input"),
    (hardtanh_backward, FLOATS, GRAD_X, ("min_val", "max_val"), "hardtanh_backward hardtanh_backward.grad_input"),
    (leaky_relu_backward, FLOATS, GRAD_X, ("negative_slope",), "leaky_relu_backward leaky_relu_backward.grad_input"),
]

for _fn, _dtypes, _params, _overloads in FORWARD:
    register_pointwise(CATEGORY, Pointwise(_fn, _dtypes, params=_params), _overloads)
for _fn, _dtypes, _tensors, _params, _overloads in BACKWARD:
    register_pointwise(CATEGORY, Pointwise(_fn, _dtypes, tensors=_tensors, params=_params), _overloads)

def _gelu(forward: bool):
    """gelu's math by its `approximate` argument; an unknown one is ATen's error to raise."""
    table = {"none": gelu_erf, "tanh": gelu_tanh} if forward else {"none": gelu_erf_backward, "tanh": gelu_tanh_backward}

    def select(bound: dict):
        if bound.get("approximate", "none") not in table:
            raise Decline("unknown approximation")
        return table[bound.get("approximate", "none")]
    return select


register_pointwise(CATEGORY, Pointwise(gelu_erf, FLOATS, select=_gelu(True)), "gelu gelu.out gelu_")
register_pointwise(CATEGORY, Pointwise(gelu_erf_backward, FLOATS, tensors=GRAD_X, select=_gelu(False)),
                   "gelu_backward gelu_backward.grad_input")
register_pointwise(CATEGORY, Pointwise(elu_backward_of_input, FLOATS, tensors=("grad_output", "self_or_result"),
                                       params=("alpha", "scale", "input_scale"),
                                       select=lambda b: elu_backward_of_result if b["is_result"] else elu_backward_of_input),
                   "elu_backward elu_backward.grad_input")
