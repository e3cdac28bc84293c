"""Factories and copies served by the library: ranges, fills, clones and casts, exactly as ATen makes them."""
from __future__ import annotations

import pytest
import torch

from tilebridge.integrations.torch import disable, enable

LIBRARY = ["factories"]  # the category under test (see conftest.library)


def _eager(fn):
    disable()
    try:
        return fn()
    finally:
        enable(include=["factories"])


CALLS = [
    lambda: torch.arange(1000),
    lambda: torch.arange(-7, 1000, 3),
    lambda: torch.arange(5.0, 300.0, 2.0),
    lambda: torch.arange(0, 1003, dtype=torch.bfloat16),
    lambda: torch.scalar_tensor(-2.5),
    lambda: torch.scalar_tensor(3, dtype=torch.int64),
    lambda: torch.ones_like(torch.empty(37, 5, dtype=torch.float16)),
    lambda: torch.zeros_like(torch.empty(1001, dtype=torch.int64)),
    lambda: torch.full_like(torch.empty(3, 333), float("-inf")),
    lambda: torch.empty(4, dtype=torch.bool).new_ones((17, 3)),
    lambda: torch.empty(4, dtype=torch.bfloat16).new_full((129,), 0.1875),
]


@pytest.mark.parametrize("index", range(len(CALLS)))
def test_factories_match_aten(library, index):
    ours = CALLS[index]()
    expected = _eager(CALLS[index])
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    assert torch.equal(ours, expected)
    assert sum(library["served"].values()) >= 1


def test_clone_and_casts_of_strided_tensors(library):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(65, 130, generator=g) * 100)[:, ::3]
    ints = torch.randint(-9, 9, (77,), generator=g)
    cases = [lambda: x.clone(), lambda: x.to(torch.int32), lambda: x.to(torch.bfloat16), lambda: (x > 0).to(torch.float16),
             lambda: x.to(torch.bool), lambda: x.t().contiguous(), lambda: ints.float()]
    for case in cases:
        ours = case()
        torch.testing.assert_close(ours, _eager(case), rtol=0, atol=0)
    assert library["served"]["clone"] >= 1 and library["served"]["_to_copy"] >= 4


def test_fractional_float_ranges_are_left_to_aten(library):
    result = torch.arange(0, 1, 0.1)
    assert torch.equal(result, _eager(lambda: torch.arange(0, 1, 0.1)))
    assert library["declined"]["arange.start_step"] >= 1
