"""tl.exp and tl.exp2 compile to tilebridge's branch-free polynomial (tilebridge.h): its accuracy over
the whole float range, the flush below 2^-126, the overflow bound and the special values."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

FLT_MIN = 2.0 ** -126


@triton.jit
def exp_kernel(x_ptr, out_ptr, n, BASE2: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    x = tl.load(x_ptr + offsets, mask=inside)
    y = tl.exp2(x) if BASE2 else tl.exp(x)
    tl.store(out_ptr + offsets, y, mask=inside)


def _run(x: torch.Tensor, base2: bool) -> torch.Tensor:
    out = torch.empty_like(x)
    exp_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BASE2=base2, BLOCK=1024)
    return out


def _ulps(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """|got - want| in units of the float32 spacing at want (want in float64, normal range)."""
    exponent = torch.frexp(want).exponent.to(torch.float64)
    return (got.double() - want).abs() / torch.pow(2.0, exponent - 24)


@pytest.mark.parametrize("base2, bound", [(False, 88.8), (True, 128.5)])
def test_within_1_1_ulp_where_the_result_is_normal(base2: bool, bound: float) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.cat([torch.linspace(-bound - 2, bound, 1_000_003), (torch.rand(500_000, generator=g) - 0.5) * 2,
                   torch.randn(500_000, generator=g) * 30])
    want = torch.exp2(x.double()) if base2 else torch.exp(x.double())
    got = _run(x, base2)
    normal = (want >= FLT_MIN) & (want <= torch.finfo(torch.float32).max)
    assert _ulps(got[normal], want[normal]).max() <= 1.1
    tiny = want < FLT_MIN  # flushed to zero, as GPUs' fast exp does, or kept as the exact subnormal
    assert ((got[tiny] == 0) | ((got[tiny].double() - want[tiny]).abs() <= 2.0 ** -149)).all()
    assert torch.isinf(got[want > 3.5e38]).all()


@pytest.mark.parametrize("base2", [False, True])
def test_special_values(base2: bool) -> None:
    x = torch.tensor([float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 1.0, -1.0, 127.0, -126.0, 10.0] * 103)
    got = _run(x, base2)
    want = torch.exp2(x) if base2 else torch.exp(x)
    assert torch.equal(got[:2], want[:2]) and got[2].isnan()
    assert got[3] == 1.0 and got[4] == 1.0
    if base2:  # powers of two are exact
        assert got[5] == 2.0 and got[6] == 0.5 and got[7] == 2.0 ** 127 and got[8] == FLT_MIN
    torch.testing.assert_close(got, want, rtol=2.5e-7, atol=0, equal_nan=True)
