"""Indexing along one dim (index_select, gather, scatter*, index_add) against ATen eager: exact for data
movement, exact too for the sums (ATen's order is kept).

Each case checks the op was *served* by a tilebridge kernel. Shapes are not powers of two; inputs come
strided as well as contiguous; every claimed dtype is run (the data movement kernels compile once per
element size, so a dtype costs one compile at most).
"""
from __future__ import annotations

import pytest
import torch

from tests.ops.conftest import noncontiguous, random, same_as_aten
from tilebridge.integrations.torch.aten import bypassed

MOVED = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool)
FLOATS = (torch.float32, torch.float16, torch.bfloat16)


LIBRARY = ["indexing", "shape"]  # the categories under test (see conftest.library)


@pytest.mark.parametrize("dtype", MOVED)
def test_index_select_and_gather_every_dtype(library, generator, dtype):
    x = random((6, 37, 5), dtype, generator)
    for dim, source in [(1, x), (0, noncontiguous(x)), (-1, x.transpose(0, 2))]:
        index = torch.randint(0, source.shape[dim], (23,), generator=generator)
        same_as_aten(torch.index_select, source, dim, index)
        gather_shape = list(source.shape)
        gather_shape[dim] = 9
        gather_shape[0] = min(gather_shape[0], 4) if dim != 0 else gather_shape[0]
        gather_index = torch.randint(0, source.shape[dim], gather_shape, generator=generator)
        same_as_aten(torch.gather, source, dim, gather_index)
    out = torch.full((6, 4, 5), 7, dtype=dtype)
    index = torch.tensor([36, 0, 36, 2], dtype=torch.int32 if dtype == torch.float32 else torch.int64)
    torch.index_select(x, 1, index, out=out)
    assert torch.equal(out, x[:, [36, 0, 36, 2]])
    assert library["served"]["index_select"] == 3 and library["served"]["gather"] == 3
    assert library["served"]["index_select.out"] == 1


@pytest.mark.parametrize("dtype", MOVED)
def test_scatter_every_dtype(library, generator, dtype):
    x = random((11, 7), dtype, generator)
    src = random((4, 9), dtype, generator)
    index = torch.stack([torch.randperm(11, generator=generator)[:4] for _ in range(5)], 1)  # no duplicates per column
    same_as_aten(lambda a, s: a.scatter(0, index, s), x, src)
    same_as_aten(lambda a, s: a.scatter(0, index, s), noncontiguous(x), noncontiguous(src))
    same_as_aten(lambda a: a.scatter(0, index, 1), x)
    target = x.clone()
    target.scatter_(0, index, src)
    with bypassed():
        expected = x.clone().scatter_(0, index, src)
    assert torch.equal(target, expected)
    assert library["served"]["scatter.src"] == 2 and library["served"]["scatter.value"] == 1
    assert library["served"]["scatter_.src"] == 1


@pytest.mark.filterwarnings("ignore:The reduce argument")
@pytest.mark.parametrize("dtype", (*FLOATS, torch.int64, torch.uint8))
def test_scatter_add_reduce_and_index_add(library, generator, dtype):
    """Duplicate indices accumulate in ATen's order: exact even for 16-bit floats."""
    x = random((13, 6), dtype, generator, 0.5, 2.0)
    src = random((40, 5), dtype, generator, 0.5, 2.0)
    index = torch.randint(0, 13, (40, 5), generator=generator)
    same_as_aten(lambda a, s: a.scatter_add(0, index, s), x, noncontiguous(src))
    same_as_aten(lambda a, s: a.scatter(0, index[:7], s, reduce="multiply"), x, src)
    same_as_aten(lambda a, s: a.scatter(1, index[:13, :3] % 6, s, reduce="add"), noncontiguous(x), src)
    rows = torch.randint(0, 13, (40,), generator=generator)
    alpha = 0.75 if dtype.is_floating_point else 2
    for self_, dim, index_, source in [(x[:, :5], 0, rows, src), (x.t(), 1, rows[:5], noncontiguous(src[:6])),
                                       (x[:, 0], 0, rows, src[:, 1])]:
        got = self_.index_add(dim, index_, source, alpha=alpha)
        with bypassed():  # 16-bit floats: summed in float32 and rounded once, as ATen does for 2-d and alpha 1
            wide = dtype in (torch.float16, torch.bfloat16)
            want = self_.float().index_add(dim, index_, source.float(), alpha=alpha).to(dtype) if wide else \
                self_.index_add(dim, index_, source, alpha=alpha)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)  # float32 alpha: ATen may fuse the multiply-add
    target = x.clone()
    target.scatter_add_(0, index[:, :4], src[:, :4])
    with bypassed():
        expected = x.clone().scatter_add_(0, index[:, :4], src[:, :4])
    assert torch.equal(target, expected)
    for overload in ("scatter_add", "scatter.reduce", "index_add", "scatter_add_"):
        assert library["served"][overload] >= 1, overload


def test_indexing_errors_stay_atens(library, generator):
    x = random((5, 4), torch.float32, generator)
    for fn in (lambda: torch.gather(x, 0, torch.tensor([[5]])), lambda: torch.index_select(x, 1, torch.tensor([4])),
               lambda: x.scatter(0, torch.tensor([[-1]]), 1.0), lambda: x.index_add(0, torch.tensor([7]), x[:1])):
        with pytest.raises((IndexError, RuntimeError)):
            fn()
    assert not library["served"]


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.int64))
def test_scatter_reduce(library, generator, dtype):
    x = random((6, 5), dtype, generator, 0.5, 4.0)
    src = random((30, 4), dtype, generator, 0.5, 4.0)
    if dtype == torch.float32:
        x[0, 0], src[3, 1] = float("nan"), float("nan")  # NaN wins amax and amin, as in ATen
    index = torch.randint(0, 6, (30, 4), generator=generator)
    for reduce in ("sum", "prod", "amax", "amin"):
        for include_self in (True, False):
            got = x.scatter_reduce(0, index, noncontiguous(src), reduce, include_self=include_self)
            with bypassed():
                want = x.scatter_reduce(0, index, src, reduce, include_self=include_self)
            torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    assert library["served"]["scatter_reduce.two"] == 8
