"""Losses against float64 references: cross_entropy (log_softmax + nll_loss), mse_loss, binary_cross_entropy.

Every case checks the overload was served by a tilebridge kernel, over odd shapes, a strided input,
every reduction and every claimed float dtype; gradients go through autograd, so the backward ops run too.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import noncontiguous, random
from tilebridge.integrations.torch.aten import bypassed

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
REDUCTIONS = ("none", "mean", "sum")

LIBRARY = ["losses", "softmax"]  # the categories under test (see conftest.library)



def _value_and_grad(fn, x, *rest):
    x = x.detach().clone().requires_grad_(True)
    y = fn(x, *rest)
    weights = torch.linspace(-1.0, 2.0, y.numel()).reshape(y.shape).to(y.dtype)
    (grad,) = torch.autograd.grad(y, x, weights)
    return y.detach(), grad


def _check(fn, x, *rest, dtype):
    y, grad = _value_and_grad(fn, x, *rest)
    with bypassed():
        y64, grad64 = _value_and_grad(fn, x.double(), *(t.double() if t is not None and t.is_floating_point() else t
                                                          for t in rest))
    tol = TOLERANCE[dtype]
    assert y.dtype == dtype and grad.dtype == dtype
    torch.testing.assert_close(y.double(), y64, atol=tol, rtol=tol)
    torch.testing.assert_close(grad.double(), grad64, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy(library, generator, dtype):
    x = noncontiguous(random((37, 11), dtype, generator))
    target = torch.randint(0, 11, (37,), generator=generator)
    target[[2, 30]] = 7
    weight = random((11,), dtype, generator, 0.2, 2.0)
    for reduction in REDUCTIONS:
        for w in (None, weight):
            _check(lambda x, t, w: F.cross_entropy(x, t, weight=w, reduction=reduction, ignore_index=7), x, target, w,
                   dtype=dtype)
    assert library["served"]["nll_loss_forward"] == 6 and library["served"]["nll_loss_backward"] == 6


def test_cross_entropy_spatial(library, generator):
    x = random((3, 5, 4, 7), torch.float32, generator).transpose(2, 3)  # nll_loss2d, strided
    target = torch.randint(0, 5, (3, 7, 4), generator=generator)
    target[0, 1, 2] = -100
    weight = random((5,), torch.float32, generator, 0.2, 2.0)
    for reduction in REDUCTIONS:
        _check(lambda x, t, w: F.cross_entropy(x, t, weight=w, reduction=reduction), x, target, weight, dtype=torch.float32)
    assert library["served"]["nll_loss2d_forward"] == 3 and library["served"]["nll_loss2d_backward"] == 3


def test_nll_loss_one_dimensional_and_out_of_range(library, generator):
    x = random((9,), torch.float32, generator)
    for reduction in REDUCTIONS:
        _check(lambda x, t: F.nll_loss(x, t, reduction=reduction), x, torch.tensor(4), dtype=torch.float32)
    assert library["served"]["nll_loss_forward"] == 3
    with pytest.raises((IndexError, RuntimeError)):
        F.nll_loss(x.reshape(1, 9), torch.tensor([9]))
    assert library["declined"]["nll_loss_forward"] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_and_binary_cross_entropy(library, generator, dtype):
    x = noncontiguous(random((13, 7, 3), dtype, generator, 0.02, 0.98))
    target = random((13, 7, 3), dtype, generator, 0.0, 1.0)
    weight = random((7, 3), dtype, generator, 0.5, 1.5)
    for reduction in REDUCTIONS:
        _check(lambda x, t: F.mse_loss(x, t, reduction=reduction), x, target, dtype=dtype)
        _check(lambda x, t: F.binary_cross_entropy(x, t, reduction=reduction), x, target, dtype=dtype)
        _check(lambda x, t, w: F.binary_cross_entropy(x, t, weight=w, reduction=reduction), x, target, weight, dtype=dtype)
    for overload in ("mse_loss", "mse_loss_backward", "binary_cross_entropy", "binary_cross_entropy_backward"):
        assert library["served"][overload] >= 3, overload


def test_out_and_atens_errors(library, generator):
    x, target = random((5, 6), torch.float32, generator, 0.1, 0.9), random((5, 6), torch.float32, generator, 0.0, 1.0)
    out = torch.empty(())
    torch.nn.functional.mse_loss(x, target)
    torch.ops.aten.mse_loss.out(x, target, 1, out=out)
    torch.testing.assert_close(out, ((x - target) ** 2).mean())
    assert library["served"]["mse_loss.out"] == 1
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(x * 2, target)
    assert library["declined"]["binary_cross_entropy"] == 1
