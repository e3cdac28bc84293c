"""Lookups by index tensors (embedding and its backward, x[i], index_put) against ATen eager: exact for data
movement, exact too for the sums (ATen's order is kept).

Each case checks the op was *served* by a tilebridge kernel. Shapes are not powers of two; inputs come
strided as well as contiguous; every claimed dtype is run.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import noncontiguous, random, same_as_aten
from tilebridge.integrations.torch.aten import bypassed

MOVED = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool)
FLOATS = (torch.float32, torch.float16, torch.bfloat16)

LIBRARY = ["advanced_indexing"]  # the category under test (see conftest.library)


@pytest.mark.parametrize("dtype", MOVED)
def test_embedding_every_dtype(library, generator, dtype):
    weight = random((37, 13), dtype, generator)
    indices = torch.randint(0, 37, (5, 7), generator=generator)
    same_as_aten(F.embedding, indices, weight)
    same_as_aten(F.embedding, indices.int() if dtype == torch.float32 else indices, noncontiguous(weight))  # int32: one case
    same_as_aten(lambda i, w: F.embedding(i, w), noncontiguous(indices), weight.t().contiguous().t())
    assert library["served"]["embedding"] == 3


def test_embedding_out_of_range_is_atens_error(library, generator):
    weight = random((5, 3), torch.float32, generator)
    with pytest.raises(IndexError):
        F.embedding(torch.tensor([1, 5]), weight)
    with pytest.raises(IndexError):
        F.embedding(torch.tensor([-1]), weight)
    assert library["declined"]["embedding"] == 2


@pytest.mark.parametrize("dtype", FLOATS)
def test_embedding_backward_matches_atens_sums(library, generator, dtype):
    weight = random((37, 13), dtype, generator).requires_grad_()
    indices = torch.randint(0, 37, (5, 71), generator=generator)  # many repeats: sums in ATen's order
    grad = noncontiguous(random((5, 71, 13), dtype, generator))
    for padding_idx in (None, 3):
        (got,) = torch.autograd.grad(F.embedding(indices, weight, padding_idx=padding_idx), weight, grad)
        with bypassed():
            (want,) = torch.autograd.grad(F.embedding(indices, weight, padding_idx=padding_idx), weight, grad)
        assert torch.equal(got, want)
    assert library["served"]["embedding_dense_backward"] == 2


def _setitem(t, key, value):
    t[key] = value
    return t


@pytest.mark.parametrize("dtype", MOVED)
def test_advanced_indexing_get_and_put(library, generator, dtype):
    x = random((6, 7, 5), dtype, generator)
    rows, last = torch.randint(-6, 6, (4, 3), generator=generator), torch.randint(0, 5, (3,), generator=generator)
    mask = random((6, 7), torch.bool, generator)
    values = random((4, 3, 7), dtype, generator)
    same_as_aten(lambda t: t[rows], x)
    same_as_aten(lambda t: t[rows, :, last], noncontiguous(x))  # indexed dims apart: the batch goes first
    same_as_aten(lambda t: t[:, last[:2], last[:1]], x.transpose(0, 2))
    same_as_aten(lambda t: t[mask], x)
    same_as_aten(lambda t: _setitem(t.clone(), (rows, slice(None), last), values), x)
    same_as_aten(lambda t: _setitem(t.clone(), mask, values[0, 0, 0]), noncontiguous(x))
    same_as_aten(lambda t: t.index_put((rows,), values[0, 0, :5]), x)
    assert library["served"]["index.Tensor"] == 4 and library["served"]["index_put_"] == 2
    assert library["served"]["index_put"] == 1


@pytest.mark.parametrize("dtype", (*FLOATS, torch.int64, torch.uint8))
def test_index_put_accumulate_with_duplicates(library, generator, dtype):
    """Repeated positions sum in order, rounded each step as ATen's serial CPU kernel does (exact for 16-bit too)."""
    x = random((7, 6, 5), dtype, generator).transpose(0, 1)
    rows = torch.randint(0, 6, (50,), generator=generator)
    values = random((50, 7, 5), dtype, generator)
    same_as_aten(lambda t: t.clone().index_put_((rows,), values, accumulate=True), x)
    same_as_aten(lambda t: t.index_put((rows[:9], rows[:9]), values[:9, 0], accumulate=True), x.contiguous())
    assert library["served"]["index_put_"] + library["served"]["index_put"] >= 2
