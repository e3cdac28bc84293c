"""Shape operators against ATen eager, bit for bit: every claimed dtype, strided inputs, out= and in place.

The kernels move raw bits and compile once per element size, so looping over dtypes costs few compiles.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import noncontiguous, random, same_as_aten
from tilebridge.integrations.torch.aten import bypassed

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8,
          torch.bool)


LIBRARY = ["indexing", "advanced_indexing", "shape"]  # the categories under test (see conftest.library)



@pytest.mark.parametrize("dtype", DTYPES)
def test_cat_and_stack(library, generator, dtype):
    a, b = random((5, 7, 3), dtype, generator), random((5, 2, 3), dtype, generator)
    same_as_aten(lambda x, y: torch.cat([x, y, x[:, :0], torch.empty(0, dtype=dtype)], 1), a, noncontiguous(b))
    same_as_aten(lambda x, y: torch.cat([x, y], -1), a.transpose(0, 2), random((3, 7, 11), dtype, generator))
    same_as_aten(lambda x, y: torch.stack([x, y, x], 1), noncontiguous(a), a.transpose(1, 2).contiguous().transpose(1, 2))
    out = torch.empty(10, 7, 3, dtype=dtype)
    torch.cat([a, a.flip(0)], out=out)
    with bypassed():
        assert torch.equal(out, torch.cat([a, a.flip(0)]))
    assert library["served"]["cat"] == 2 and library["served"]["stack"] == 1 and library["served"]["cat.out"] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_repeat_pad_flip(library, generator, dtype):
    x = random((5, 7, 3), dtype, generator)
    same_as_aten(lambda t: t.repeat(2, 1, 3, 2), noncontiguous(x))
    same_as_aten(lambda t: t.repeat(1, 1), x[0])
    fill = True if dtype == torch.bool else 1.5 if dtype.is_floating_point else 3
    same_as_aten(lambda t: F.pad(t, (1, 2, -1, 3), value=fill), x)
    same_as_aten(lambda t: F.pad(t, (0, 0, 2, 0, 1, 1)), noncontiguous(x))
    same_as_aten(lambda t: t.flip(0, 2), x.transpose(0, 2))
    same_as_aten(lambda t: t.flip(-1), noncontiguous(x))
    for overload, count in (("repeat", 2), ("constant_pad_nd", 2), ("flip", 2)):
        assert library["served"][overload] == count, overload


@pytest.mark.parametrize("dtype", DTYPES)
def test_tril_triu(library, generator, dtype):
    x = random((3, 6, 11), dtype, generator)
    for diagonal in (-2, 0, 3):
        same_as_aten(lambda t: t.tril(diagonal), x)
        same_as_aten(lambda t: t.triu(diagonal), noncontiguous(x))
    target = noncontiguous(x.clone())
    target.triu_(1)
    out = torch.empty(11, 6, dtype=dtype)
    torch.tril(x[1].t(), -1, out=out)
    with bypassed():
        assert torch.equal(target, x.triu(1)) and torch.equal(out, x[1].t().tril(-1))
    assert library["served"]["tril"] == 3 and library["served"]["triu_"] == 1 and library["served"]["tril.out"] == 1


def test_shape_errors_stay_atens(library, generator):
    x = random((4, 5), torch.float32, generator)
    for fn in (lambda: torch.cat([x, x[:, :2]], 0), lambda: torch.stack([x, x[:2]]), lambda: x.repeat(2),
               lambda: F.pad(x, (-3, -3)), lambda: x.flip(0, 0), lambda: x[0].tril()):
        with pytest.raises(RuntimeError):
            fn()
    assert not library["served"]


def test_mixed_dtypes_go_to_aten(library, generator):
    a, b = random((3, 4), torch.float32, generator), random((3, 4), torch.float16, generator)
    assert torch.cat([a, b]).dtype == torch.float32
    assert library["declined"]["cat"] == 1
