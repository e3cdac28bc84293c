"""Helpers for the operator-library tests: random inputs that are never all zeros, a served-op check."""
from __future__ import annotations

import pytest
import torch

from tilebridge.integrations.torch import COUNTERS, disable, enable


def random(shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator, low: float = -3.0,
           high: float = 3.0) -> torch.Tensor:
    """Uniform values in [low, high) (integers: a small signed range; bools: about half True)."""
    if dtype == torch.bool:
        return torch.rand(shape, generator=generator) < 0.5
    if not dtype.is_floating_point:
        lo = 0 if dtype == torch.uint8 else -9
        return torch.randint(lo, 10, shape, generator=generator, dtype=dtype)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low).to(dtype)


def noncontiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values in a strided layout: every other element of a buffer twice as long in the last dim."""
    wide = torch.empty(*t.shape[:-1], t.shape[-1] * 2, dtype=t.dtype) if t.dim() else torch.empty(2, dtype=t.dtype)
    view = wide[..., ::2] if t.dim() else wide[0]
    view.copy_(t)
    return view


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def library(request):
    """The library enabled for one test, counters reset; returns the counters to check what ran.

    A test module may set `LIBRARY = [categories]` to enable only those: its inputs and references are
    then made by ATen and the only kernels compiled are the ones under test, which keeps it fast."""
    categories = getattr(request.module, "LIBRARY", None)
    enable(include=categories) if categories else enable(everything=True)
    COUNTERS["served"].clear()
    COUNTERS["declined"].clear()
    yield COUNTERS
    disable()


def same_as_aten(fn, *inputs):
    """fn(*inputs) with the library and with ATen (`bypassed`): the same dtype, shape and values, exactly."""
    from tilebridge.integrations.torch.aten import bypassed

    got = fn(*inputs)
    with bypassed():
        want = fn(*inputs)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want), (got, want)
    return got
