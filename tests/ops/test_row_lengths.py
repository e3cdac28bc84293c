"""The library's row operations at row lengths either side of `ONE_BLOCK_MAX`: a row read in one
block (no running tile, `ONE_BLOCK`) and a row walked in blocks must both match float64 ATen, on
masked (non-power-of-two) lengths, with NaNs and infinities where the op has to propagate them, and
with a row that is all -inf for the softmaxes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import random
from tilebridge.integrations.torch.aten import bypassed
from tilebridge.ops.reduction import ONE_BLOCK_MAX

LENGTHS = (1, 3, 1000, ONE_BLOCK_MAX, ONE_BLOCK_MAX + 1, 20_011)
LIBRARY = ["reduction", "softmax", "normalization", "scans"]


def _rows(length: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return random((5, length), dtype, generator)


def _reference(fn, x: torch.Tensor) -> torch.Tensor:
    with bypassed():
        return fn(x.double())


@pytest.mark.parametrize("length", LENGTHS)
def test_reductions(library, generator, length):
    x = _rows(length, generator)
    x[0] = -x[0].abs() - 1  # all negative: a masked lane filled with 0 would win the max
    x[1, length // 2] = float("nan")
    x[2, -1] = float("inf")
    x[3] = x[3].abs() + 1  # all positive: the same for the min
    for name, fn, tol in [("sum", lambda t: t.sum(-1), 1e-5), ("mean", lambda t: t.mean(-1), 1e-5),
                          ("amax", lambda t: t.amax(-1), 0), ("amin", lambda t: t.amin(-1), 0),
                          ("logsumexp", lambda t: torch.logsumexp(t, -1), 1e-5),
                          ("std", lambda t: t.std(-1) if length > 1 else t.sum(-1), 1e-4),
                          ("norm", lambda t: torch.linalg.vector_norm(t, 2, -1), 1e-5)]:
        got = fn(x)
        torch.testing.assert_close(got.double(), _reference(fn, x), rtol=tol, atol=tol * (1 + length ** 0.5),
                                   equal_nan=True, msg=lambda m: f"{name}: {m}")
        assert got[1].isnan(), name
    ints = random((4, length), torch.int32, generator)
    assert torch.equal(ints.amax(-1), _reference(lambda t: t.amax(-1), ints.double()).int())
    assert library["served"]["amax"] >= 2 and library["served"]["sum.dim_IntList"] >= 1


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_softmax_log_softmax_and_backward(library, generator, length, dtype):
    x = _rows(length, generator, dtype)
    x[3] = float("-inf")  # a row with nothing in it: ATen gives NaN for softmax, -inf - inf for log_softmax
    x[4, 0] = float("nan")
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for fn in (torch.softmax, torch.log_softmax):
        got = fn(x, -1)
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), _reference(lambda t: fn(t, -1), x), rtol=tol, atol=tol, equal_nan=True)
    served = library["served"]
    assert served["_softmax"] == 1 and served["_log_softmax"] == 1
    y = torch.randn(3, length, generator=generator, dtype=torch.float64).float().requires_grad_()
    g = torch.randn(3, length, generator=generator)
    for fn in (torch.softmax, torch.log_softmax):
        (grad,) = torch.autograd.grad(fn(y, -1), y, g)
        with bypassed():
            (want,) = torch.autograd.grad(fn(y.double(), -1), y, g.double())
        torch.testing.assert_close(grad, want.float(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("length", LENGTHS)
def test_layer_norm(library, generator, length):
    x = _rows(length, generator) * 3 + 1
    w, b = random((length,), torch.float32, generator), random((length,), torch.float32, generator)
    got = F.layer_norm(x, (length,), w, b)
    torch.testing.assert_close(got.double(), _reference(lambda t: F.layer_norm(t, (length,), w.double(), b.double()), x),
                               rtol=1e-4, atol=1e-4)
    assert library["served"]["native_layer_norm"] == 1


@pytest.mark.parametrize("length", LENGTHS)
def test_cumsum(library, generator, length):
    x = _rows(length, generator)
    torch.testing.assert_close(torch.cumsum(x, -1).double(), _reference(lambda t: torch.cumsum(t, -1), x),
                               rtol=1e-5, atol=1e-5 * (1 + length ** 0.5))
    ints = random((3, length), torch.int64, generator)
    assert torch.equal(torch.cumsum(ints, -1), _reference(lambda t: torch.cumsum(t, -1), ints.double()).long())
    assert library["served"]["cumsum"] == 2
