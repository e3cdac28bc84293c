"""Special functions, shrinkage activations, shifts and heaviside against PyTorch eager (in float64 for floats)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import noncontiguous, random
from tilebridge.integrations.torch.aten import bypassed

UNARY = {  # aten op served -> (function, input range)
    "erfinv": (torch.erfinv, (-0.95, 0.95)),
    "lgamma": (torch.lgamma, (-3.0, 6.0)),
    "sinc": (torch.sinc, (-3.0, 3.0)),
    "angle": (torch.angle, (-3.0, 3.0)),
    "special_entr": (torch.special.entr, (-1.0, 3.0)),
    "logit": (lambda x: torch.logit(x, eps=0.05), (-0.2, 1.2)),
    "hardshrink": (lambda x: F.hardshrink(x, 0.7), (-2.0, 2.0)),
    "softshrink": (lambda x: F.softshrink(x, 0.7), (-2.0, 2.0)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_unary_against_float64(library, generator, name, dtype):
    fn, (low, high) = UNARY[name]
    x = random((5, 37), dtype, generator, low, high)
    if dtype == torch.float32:
        x = noncontiguous(x)
    expected = fn(x.double()).to(dtype)
    tolerance = {"atol": 2e-5, "rtol": 2e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(fn(x), expected, **tolerance)
    assert library["served"][name] == 1


def test_logit_without_eps_and_integer_inputs(library, generator):
    x = random((3, 11), torch.float32, generator, -0.5, 1.5)
    torch.testing.assert_close(torch.logit(x), torch.logit(x.double()).float(), equal_nan=True)
    ints = random((3, 11), torch.int64, generator)
    torch.testing.assert_close(torch.lgamma(ints), torch.lgamma(ints.double()).float())
    torch.testing.assert_close(torch.special.entr(ints), torch.special.entr(ints.double()).float())
    special = torch.tensor([float("inf"), -float("inf"), float("nan"), 0.0, -0.0, 2.0])
    assert torch.isposinf(special).tolist() == [True, False, False, False, False, False]
    assert torch.isneginf(special).tolist() == [False, True, False, False, False, False]
    assert {"logit", "lgamma", "special_entr", "isposinf", "isneginf"} <= set(library["served"])


def test_backwards_of_logit_and_shrinks(library, generator):
    for fn, name, low, high in [(lambda t: torch.logit(t, 0.1), "logit_backward", 0.05, 0.95),
                                (lambda t: F.hardshrink(t, 0.5), "hardshrink_backward", -2.0, 2.0),
                                (lambda t: F.softshrink(t, 0.5), "softshrink_backward", -2.0, 2.0)]:
        x = random((7, 13), torch.float32, generator, low, high).requires_grad_()
        weight = random((7, 13), torch.float32, generator)
        (grad,) = torch.autograd.grad(fn(x), x, weight)
        xd = x.detach().double().requires_grad_()
        (expected,) = torch.autograd.grad(fn(xd), xd, weight.double())
        torch.testing.assert_close(grad, expected.float(), atol=1e-5, rtol=1e-5)
        assert library["served"][name] == 1


def test_binary_special(library, generator):
    x = random((6, 19), torch.float32, generator)
    y = noncontiguous(random((6, 19), torch.float32, generator, -0.9, 3.0))
    x[0, :4] = 0
    torch.testing.assert_close(torch.special.xlog1py(x, y), torch.special.xlog1py(x.double(), y.double()).float())
    with bypassed():
        expected = torch.nextafter(x, y)
    assert torch.equal(torch.nextafter(x, y), expected)  # float32's neighbour, bit for bit
    ints = random((6, 19), torch.int64, generator)
    values = random((19,), torch.int64, generator)
    assert torch.equal(torch.heaviside(ints, values), torch.where(ints == 0, values, (ints > 0).long()))
    for name in ("special_xlog1py", "nextafter", "heaviside"):
        assert library["served"][name] >= 1


@pytest.mark.parametrize("dtype", [torch.int8, torch.int64, torch.uint8])
def test_shifts_match_eager_including_out_of_range_counts(library, generator, dtype):
    a = random((4, 21), dtype, generator)
    low = 0 if dtype == torch.uint8 else -2
    b = torch.randint(low, 70, (4, 21), generator=generator).to(dtype)
    b[0, :3] = torch.tensor([0, dtype.itemsize * 8 - 1, dtype.itemsize * 8])
    with bypassed():
        expected = [torch.bitwise_left_shift(a, b), a >> b, a << b]
    before = a.clone()
    left, right = torch.bitwise_left_shift(a, b), a >> b
    assert torch.equal(a, before)  # __rshift__ is functional (a dunder, not an in-place op_)
    shifted = a.clone()
    shifted <<= b
    assert torch.equal(left, expected[0]) and torch.equal(right, expected[1]) and torch.equal(shifted, expected[2])
    assert library["served"]["bitwise_left_shift.Tensor"] == 1 and library["served"]["__rshift__.Tensor"] == 1
    assert library["served"]["__ilshift__.Tensor"] == 1


@pytest.mark.parametrize("name,fn,low", [("special_bessel_j0", torch.special.bessel_j0, -30.0),
                                         ("special_bessel_j1", torch.special.bessel_j1, -30.0),
                                         ("special_bessel_y0", torch.special.bessel_y0, 0.05),
                                         ("special_bessel_y1", torch.special.bessel_y1, 0.05)])
def test_bessel_functions_edges_and_dtypes(library, generator, name, fn, low):
    x = noncontiguous(random((5, 37), torch.float32, generator, low, 30.0))
    torch.testing.assert_close(fn(x), fn(x.double()).float(), atol=2e-6, rtol=1e-5)
    ints = torch.randint(1, 50, (3, 11), generator=generator)
    torch.testing.assert_close(fn(ints), fn(ints.double()).float(), atol=2e-6, rtol=1e-5)
    edges = torch.tensor([float("-inf"), -2.0, 0.0, 2.0, float("inf"), float("nan")])
    with bypassed():
        expected = fn(edges)
    torch.testing.assert_close(fn(edges), expected, equal_nan=True)  # NaN at +-inf, -inf at 0 for Y, as ATen
    assert library["served"][name] == 3
    with pytest.raises(RuntimeError, match="not implemented"):  # declined: ATen's own error for 16-bit floats
        fn(x.bfloat16())
