"""conv1d/conv2d as an implicit GEMM (`convolution`, `convolution_backward`) against a float64 run of the same
inputs and against ATen: random non-power-of-two shapes, stride, padding, dilation, groups, bias or none, every
float dtype, channels-last and strided inputs, partial gradients; what the library does not handle is declined."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import noncontiguous, random
from tilebridge.integrations.torch.aten import bypassed

LIBRARY = ["conv"]  # the category under test (see conftest.library)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Relative to the result's largest magnitude: fp32 sums in another order, 16-bit results round once.
TOLERANCE = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}

# (input shape, weight shape, keyword arguments, bias)
CASES = [
    ((2, 3, 11, 13), (5, 3, 3, 3), dict(padding=1), True),
    ((3, 20, 9, 10), (7, 20, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2)), True),
    ((2, 12, 7, 9), (9, 4, 3, 3), dict(stride=2, padding=2, groups=3), False),
    ((1, 37, 6, 5), (19, 37, 1, 1), {}, True),
    ((2, 6, 17, 5), (6, 1, 5, 3), dict(padding=(2, 0), dilation=(3, 1), groups=6), True),   # depthwise
    ((3, 7, 23), (4, 7, 3), dict(stride=2, padding=2), True),                              # conv1d
    ((2, 10, 19), (6, 5, 4), dict(dilation=3, groups=2), False),
]


def _run(x, w, b, kwargs):
    """Output and gradients of a weighted sum of it with respect to every input."""
    inputs = [t.detach().clone().requires_grad_(True) for t in (x, w, b) if t is not None]
    conv = F.conv1d if x.dim() == 3 else F.conv2d
    y = conv(inputs[0], inputs[1], inputs[2] if b is not None else None, **kwargs)
    weights = torch.linspace(-1.0, 1.0, y.numel(), dtype=torch.float64).reshape(y.shape).to(y.dtype)
    return [y, *torch.autograd.grad(y, inputs, weights)]


def _close(got, want, dtype):
    for a, e in zip(got, want):
        assert a.dtype == dtype and a.shape == e.shape
        scale = float(e.detach().abs().max()) or 1.0
        torch.testing.assert_close(a.double(), e.double(), atol=TOLERANCE[dtype] * scale, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_convolution_forward_and_backward(library, generator, case, dtype):
    x_shape, w_shape, kwargs, has_bias = CASES[case]
    x, w = random(x_shape, dtype, generator), random(w_shape, dtype, generator)
    b = random((w_shape[0],), dtype, generator) if has_bias else None
    got = _run(x, w, b, kwargs)
    assert library["served"]["convolution"] == 1 and library["served"]["convolution_backward"] == 1
    with bypassed():
        exact = _run(x.double(), w.double(), b.double() if b is not None else None, kwargs)
        aten = _run(x, w, b, kwargs)
    _close(got, [e.to(dtype) if dtype != torch.float32 else e for e in exact], dtype)
    if dtype == torch.float32:
        _close(got, aten, dtype)


def test_channels_last_and_strided_inputs(library, generator):
    x = random((2, 9, 10, 7), torch.float32, generator).to(memory_format=torch.channels_last)
    w = random((6, 9, 3, 3), torch.float32, generator)
    b = random((6,), torch.float32, generator)
    got = _run(x, w, b, dict(padding=1))
    strided = _run(noncontiguous(x), noncontiguous(w), noncontiguous(b), dict(padding=1))
    with bypassed():
        want = _run(x, w, b, dict(padding=1))
    assert got[0].is_contiguous(memory_format=torch.channels_last) == want[0].is_contiguous(
        memory_format=torch.channels_last)
    _close(got, want, torch.float32)
    _close(strided, want, torch.float32)
    assert library["served"]["convolution"] == 2 and library["served"]["convolution_backward"] == 2


def test_partial_gradients(library, generator):
    """Only the gradients autograd asks for are computed (`output_mask`); the others are None."""
    x, w = random((2, 5, 8, 6), torch.float32, generator), random((4, 5, 2, 3), torch.float32, generator)
    mask = [True, False, True]
    got = torch.ops.aten.convolution_backward(random((2, 4, 7, 4), torch.float32, generator), x, w, [4], [1, 1],
                                              [0, 0], [1, 1], False, [0, 0], 1, mask)
    assert got[1] is None and library["served"]["convolution_backward"] == 1
    w.requires_grad_(True)
    dw, = torch.autograd.grad(F.conv2d(x, w, stride=2).sum(), [w])
    with bypassed():
        want, = torch.autograd.grad(F.conv2d(x, w, stride=2).sum(), [w])
    _close([dw], [want], torch.float32)


@pytest.mark.parametrize("call", [
    lambda g: F.conv_transpose2d(random((1, 4, 5, 5), torch.float32, g), random((4, 3, 3, 3), torch.float32, g)),
    lambda g: F.conv3d(random((1, 2, 4, 4, 4), torch.float32, g), random((3, 2, 2, 2, 2), torch.float32, g)),
    lambda g: F.conv2d(random((1, 2, 6, 6), torch.float64, g), random((3, 2, 3, 3), torch.float64, g)),
])
def test_declined(library, generator, call):
    """Transposed and 3-D convolutions and float64 go to ATen, which gives the same result as without the library."""
    got = call(torch.Generator().manual_seed(7))
    with bypassed():
        want = call(torch.Generator().manual_seed(7))
    assert torch.equal(got, want)
    assert library["declined"]["convolution"] == 1 and not library["served"]["convolution"]


def test_errors_are_atens(library, generator):
    x, w = random((1, 4, 5, 5), torch.float32, generator), random((3, 2, 3, 3), torch.float32, generator)
    with pytest.raises(RuntimeError):
        F.conv2d(x, w)                          # channels do not match
    with pytest.raises(RuntimeError):
        F.conv2d(x, random((3, 4, 7, 7), torch.float32, generator))  # kernel larger than the padded input
