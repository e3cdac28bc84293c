"""cumsum/cumprod, sort/argsort and topk against float64 or ATen: every dim, strided inputs, out=, in place,
NaN ordering, stability, and the declines where ATen's own tie order cannot be matched."""
from __future__ import annotations

import pytest
import torch

from tests.ops.conftest import random
from tilebridge.integrations.torch.aten import bypassed

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
          torch.bool)
SHAPE = (5, 37, 3)

LIBRARY = ["scans"]  # the categories under test (see conftest.library)



def _strided(dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    """A (3, 37, 5) transposed view, values never all zero."""
    return random(SHAPE, dtype, generator).transpose(0, 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cumsum_cumprod(library, generator, dtype):
    x = _strided(dtype, generator)
    small = x if dtype in (torch.bool, torch.uint8) else (x % 3 if not dtype.is_floating_point else x * 0.5)
    for dim in (0, 1, -1):
        for fn, source in ((torch.cumsum, x), (torch.cumprod, small)):
            result = fn(source, dim)
            with bypassed():
                expected = fn(source.double() if dtype.is_floating_point else source, dim)
            assert result.shape == x.shape
            if dtype.is_floating_point:
                assert result.dtype == dtype
                torch.testing.assert_close(result.double(), expected, atol=2e-2, rtol=2e-2 if dtype != torch.float32 else 1e-5)
            else:
                assert result.dtype == torch.int64 and torch.equal(result, expected)
    assert library["served"]["cumsum"] == 3 and library["served"]["cumprod"] == 3


def test_scan_out_and_inplace(library, generator):
    x = _strided(torch.float32, generator)
    out = torch.empty(x.shape)
    torch.cumsum(x, 1, out=out)
    inplace = x.clone()
    inplace.cumprod_(0)
    with bypassed():
        torch.testing.assert_close(out, x.cumsum(1))
        torch.testing.assert_close(inplace, x.cumprod(0))
    assert library["served"]["cumsum.out"] == 1 and library["served"]["cumprod_"] == 1
    ints = random((4, 9), torch.int32, generator)
    assert torch.equal(torch.cumsum(ints, 1, dtype=torch.int64), ints.long().cumsum(1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_stable_sort(library, generator, dtype):
    x = _strided(dtype, generator)  # integers and bools repeat: stability decides the indices
    for dim in (0, 1):
        for descending in (False, True):
            values, indices = torch.sort(x, dim=dim, descending=descending, stable=True)
            with bypassed():
                want_values, want_indices = torch.sort(x, dim=dim, descending=descending, stable=True)
            assert torch.equal(values, want_values) and torch.equal(indices, want_indices)
    assert torch.equal(torch.argsort(x, dim=1, stable=True), torch.sort(x, dim=1, stable=True).indices)
    assert library["served"]["sort.stable"] >= 6


def test_sort_nan_and_unstable_ties(library, generator):
    x = torch.tensor([1.0, float("nan"), -0.0, 0.0, float("nan"), 2.0, -float("inf"), 0.5])
    for descending in (False, True):
        values, indices = torch.sort(x, descending=descending, stable=True)
        with bypassed():
            want = torch.sort(x, descending=descending, stable=True)
        assert torch.equal(indices, want.indices)
        torch.testing.assert_close(values, want.values, rtol=0, atol=0, equal_nan=True)
    out_values, out_indices = torch.empty(8), torch.empty(8, dtype=torch.int64)
    torch.sort(x.flip(0), stable=True, out=(out_values, out_indices))
    assert library["served"]["sort.values_stable"] == 1
    library["declined"].clear()
    ties = random((3, 40), torch.int64, generator)
    torch.sort(ties)  # stable=False: ATen orders the ties its own way
    assert library["declined"]["sort.stable"] == 1
    distinct = torch.randperm(40, generator=generator).float().reshape(2, 20)
    torch.sort(distinct)
    assert library["served"]["sort.stable"] >= 3


@pytest.mark.parametrize("dtype", [d for d in DTYPES if d != torch.bool])
def test_topk(library, generator, dtype):
    x = torch.empty(29, 16, dtype=dtype)[:, ::2]  # a strided view of 232 distinct values (exact in bfloat16)
    x.copy_(torch.randperm(29 * 8, generator=generator).reshape(29, 8))
    if dtype == torch.float32:
        x[3, 2] = float("nan")
    for dim, k, largest in ((1, 3, True), (1, 1, False), (0, 5, True), (0, 29, False)):
        with bypassed():
            expected = torch.topk(x, k, dim, largest)
        values, indices = torch.topk(x, k, dim, largest)
        assert torch.equal(indices, expected.indices)
        torch.testing.assert_close(values, expected.values, rtol=0, atol=0, equal_nan=True)
    assert library["served"]["topk"] == 4
    ties = torch.zeros(3, 8, dtype=dtype)
    ties[:, 2] = 1
    torch.topk(ties, 2)
    assert library["declined"]["topk"] == 1
