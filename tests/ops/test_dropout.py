"""native_dropout: random masks cannot be compared with ATen's, so check what must hold instead: the share kept
matches 1 - p, kept elements are scaled by 1 / (1 - p), torch.manual_seed makes it reproducible, fresh calls
draw fresh masks, eval is the identity; and the backward against ATen."""
from __future__ import annotations

import math

import pytest
import torch

from tests.ops.conftest import noncontiguous, random
from tilebridge.integrations.torch.aten import bypassed

DTYPES = (torch.float32, torch.float16, torch.bfloat16)

LIBRARY = ["dropout"]  # the categories under test (see conftest.library)



@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_statistics_and_scale(library, generator, dtype):
    x = noncontiguous(random((301, 197), dtype, generator))
    for p in (0.1, 0.5, 0.8):
        out, mask = torch.native_dropout(x, p, True)
        assert mask.dtype == torch.bool and mask.shape == x.shape and out.dtype == dtype
        n = mask.numel()
        kept = mask.float().mean().item()
        assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)  # five standard deviations
        with bypassed():
            expected = (x.float() * mask * (1 / (1 - p))).to(dtype)
        torch.testing.assert_close(out, expected, atol=0, rtol=1e-6)
        rows, cols = mask.float().mean(1), mask.float().mean(0)  # no structure along either axis
        assert rows.std().item() < 5 * math.sqrt(p * (1 - p) / x.shape[1])
        assert cols.std().item() < 5 * math.sqrt(p * (1 - p) / x.shape[0])
    assert library["served"]["native_dropout"] == 3


def test_seeded_reproducible_and_fresh(library, generator):
    x = random((1000,), torch.float32, generator)
    torch.manual_seed(7)
    first = torch.native_dropout(x, 0.4, True)
    second = torch.native_dropout(x, 0.4, True)
    torch.manual_seed(7)
    again = torch.native_dropout(x, 0.4, True)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], second[1])
    assert library["served"]["native_dropout"] == 3


def test_edges_eval_and_nan(library, generator):
    x = random((17, 5), torch.float32, generator)
    x[0, 0] = float("nan")
    out, mask = torch.native_dropout(x, 0.5, False)
    assert mask.all() and torch.equal(out.nan_to_num(), x.nan_to_num())
    out, mask = torch.native_dropout(x, 1.0, True)
    assert not mask.any() and torch.isnan(out[0, 0]) and (out.nan_to_num() == 0).all()  # NaN * 0, as ATen
    out, mask = torch.native_dropout(x, 0.0, True)
    assert mask.all() and torch.equal(out.nan_to_num(), x.nan_to_num())
    assert library["served"]["native_dropout"] == 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward(library, generator, dtype):
    grad = random((23, 9), dtype, generator).t()
    mask = torch.rand((9, 23), generator=generator) < 0.6
    result = torch.ops.aten.native_dropout_backward(grad, mask, 1 / 0.6)
    with bypassed():
        expected = torch.ops.aten.native_dropout_backward(grad, mask, 1 / 0.6)
    torch.testing.assert_close(result, expected)
    assert library["served"]["native_dropout_backward"] == 1
