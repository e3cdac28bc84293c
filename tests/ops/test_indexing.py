"""Indexing operators against ATen eager: exact for data movement, exact too for the sums (ATen's order is kept).

Each case checks the op was *served* by a tilebridge kernel. Shapes are not powers of two; inputs come
strided as well as contiguous; every claimed dtype is run (the data movement kernels compile once per
element size, so a dtype costs one compile at most).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import noncontiguous, random
from tilebridge.integrations.torch.aten import bypassed

MOVED = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool)
FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def _same(fn, *inputs):
    """fn(*inputs) with the library and with ATen: the same dtype, shape and values (NaN where NaN)."""
    got = fn(*inputs)
    with bypassed():
        want = fn(*inputs)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want), (got, want)
    return got


@pytest.mark.parametrize("dtype", MOVED)
def test_embedding_every_dtype(library, generator, dtype):
    weight = random((37, 13), dtype, generator)
    indices = torch.randint(0, 37, (5, 7), generator=generator)
    _same(F.embedding, indices, weight)
    _same(F.embedding, indices.int(), noncontiguous(weight))
    _same(lambda i, w: F.embedding(i, w), noncontiguous(indices), weight.t().contiguous().t())
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
