"""batch_norm (training with and without running statistics, eval) and group_norm against float64, forward and
backward through autograd, strided inputs, every float dtype, and the mixed mode (16-bit input, float32 parameters)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import random
from tilebridge.integrations.torch.aten import bypassed

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 6e-2}

LIBRARY = ["norms"]  # the categories under test (see conftest.library)



def _run(fn, x, params):
    x = x.detach().clone().requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True) for p in params]
    y = fn(x, *params)
    weights = torch.linspace(-1.0, 1.0, y.numel()).reshape(y.shape).to(y.dtype)
    return [y, *torch.autograd.grad(y, [x, *params], weights)]


def _check(fn, x, params, dtype):
    got = _run(fn, x, params)
    with bypassed():
        want = _run(fn, x.double(), [p.double() for p in params])
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])


def _input(dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """(6, 4, 3, 7) as a transposed view: the spatial dims do not merge, channels are strided."""
    return random((6, 4, 7, 3), dtype, generator).transpose(2, 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm(library, generator, dtype):
    x = _input(dtype, generator)
    weight, bias = random((4,), dtype, generator, 0.5, 1.5), random((4,), dtype, generator)
    _check(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, [weight, bias], dtype)
    stats = (random((4,), dtype, generator), random((4,), dtype, generator, 0.5, 2.0))
    _check(lambda x, w, b: F.batch_norm(x, stats[0].to(x.dtype), stats[1].to(x.dtype), w, b, training=False), x,
           [weight, bias], dtype)
    assert library["served"]["native_batch_norm"] == 2 and library["served"]["native_batch_norm_backward"] == 2


def test_batch_norm_running_statistics_and_mixed_dtypes(library, generator):
    x = random((9, 5), torch.float32, generator)
    ours = (random((10,), torch.float32, generator)[::2], random((10,), torch.float32, generator, 0.5, 1.5)[::2])
    theirs = (ours[0].clone(), ours[1].clone())
    y = F.batch_norm(x, *ours, training=True, momentum=0.3)
    with bypassed():
        expected = F.batch_norm(x, *theirs, training=True, momentum=0.3)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(ours, theirs)
    half = random((6, 5, 11), torch.bfloat16, generator)
    mean, var = torch.zeros(5), torch.ones(5)
    y, save_mean, save_invstd = torch.native_batch_norm(half, torch.ones(5), torch.zeros(5), mean, var, True, 0.1, 1e-5)
    assert y.dtype == torch.bfloat16 and save_mean.dtype == torch.float32
    torch.testing.assert_close(save_mean, half.float().mean((0, 2)), atol=1e-5, rtol=1e-5)
    assert library["served"]["native_batch_norm"] == 2


def test_batch_norm_with_update(library, generator):
    """The pre-dispatch pair torch.compile and export use: `_batch_norm_with_update` and `batch_norm_backward`."""
    x = random((5, 3, 4), torch.float32, generator)
    weight, bias = random((3,), torch.float32, generator, 0.5, 1.5), random((3,), torch.float32, generator)
    stats = [random((3,), torch.float32, generator), random((3,), torch.float32, generator, 0.5, 1.5)]
    theirs = [t.clone() for t in stats]

    def run(stats):
        return _run(lambda x, w, b: torch.ops.aten._batch_norm_with_update(x, w, b, *stats, 0.2, 1e-5)[0], x,
                    [weight, bias])

    got = run(stats)
    with bypassed():
        want = run(theirs)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats, theirs)
    assert library["served"]["_batch_norm_with_update"] == 1 and library["served"]["batch_norm_backward"] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm(library, generator, dtype):
    x = _input(dtype, generator)
    weight, bias = random((4,), dtype, generator, 0.5, 1.5), random((4,), dtype, generator)
    _check(lambda x, w, b: F.group_norm(x, 2, w, b), x, [weight, bias], dtype)
    _check(lambda x: F.group_norm(x, 4), x, [], dtype)
    assert library["served"]["native_group_norm"] == 2 and library["served"]["native_group_norm_backward"] == 2


def test_group_norm_mixed_dtype(library, generator):
    x = random((3, 6, 5), torch.bfloat16, generator)
    y, mean, rstd = torch.native_group_norm(x, torch.ones(6), torch.zeros(6), 3, 6, 5, 3, 1e-5)
    assert y.dtype == torch.bfloat16 and mean.dtype == rstd.dtype == torch.float32 and mean.shape == (3, 3)
    with bypassed():
        expected = torch.native_group_norm(x, torch.ones(6), torch.zeros(6), 3, 6, 5, 3, 1e-5)
    torch.testing.assert_close(mean, expected[1])
    torch.testing.assert_close(y, expected[0], atol=1e-2, rtol=1e-2)
    assert library["served"]["native_group_norm"] == 1


def test_group_norm_strided_input_is_atens_error(library, generator):
    """ATen's native_group_norm rejects an input that is not contiguous; the library hands it back so it does."""
    x = random((3, 6, 10), torch.float32, generator)[:, :, ::2]
    with pytest.raises(RuntimeError, match="contiguous"):
        torch.native_group_norm(x, torch.ones(6), torch.zeros(6), 3, 6, 5, 3, 1e-5)
    assert library["declined"]["native_group_norm"] == 1
