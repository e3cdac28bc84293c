"""tl.exp and tl.exp2 compile to tilebridge's branch-free polynomial (tilebridge.h): its accuracy over
the whole float range, the flush below 2^-126, the overflow bound and the special values, and the
same bits from vectorized and scalar code."""
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


@triton.jit
def scalar_exp_kernel(x_ptr, out_ptr, BASE2: tl.constexpr):
    i = tl.program_id(0)  # one element a program: scalar C, no vectorized loop
    x = tl.load(x_ptr + i)
    tl.store(out_ptr + i, tl.exp2(x) if BASE2 else tl.exp(x))


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


def _next_down(x: float) -> float:
    return torch.nextafter(torch.tensor(x), torch.tensor(-float("inf"))).item()


@pytest.mark.parametrize("base2, flush, overflow", [(False, -87.33654022216797, 88.72283935546875),
                                                   (True, -126.0, 128.0)])
def test_range_bounds(base2: bool, flush: float, overflow: float) -> None:
    # flush: the least float whose exp is normal; overflow: the least whose exp exceeds FLT_MAX. Just
    # under the overflow bound n is 128 and p < 1: the exponent add must still give a finite result.
    x = torch.tensor([flush, _next_down(flush), overflow, _next_down(overflow), overflow - 0.2, flush + 0.3] * 200)
    got = _run(x, base2)
    want = torch.exp2(x.double()) if base2 else torch.exp(x.double())
    assert got[0] >= FLT_MIN and got[1] == 0 and torch.isinf(got[2]) and torch.isfinite(got[3])
    keep = torch.tensor([True, False, False, True, True, True] * 200)
    assert _ulps(got[keep], want[keep]).max() <= 1.1


@pytest.mark.parametrize("base2", [False, True])
def test_scalar_and_vectorized_code_agree_bit_for_bit(base2: bool) -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.cat([torch.linspace(-160.0, 135.0, 400_003), torch.randn(100_000, generator=g) * 40,
                   torch.tensor([float("inf"), -float("inf"), float("nan"), -float("nan"), 0.0, -0.0])])
    vectorized, scalar = _run(x, base2), torch.empty_like(x)
    scalar_exp_kernel[(x.numel(),)](x, scalar, BASE2=base2)
    same = (vectorized.view(torch.int32) == scalar.view(torch.int32)) | (vectorized.isnan() & scalar.isnan())
    assert bool(same.all()) and bool(vectorized[-4:-2].isnan().all())


def test_nans_with_payloads_stay_nan() -> None:
    # a NaN's payload bits reach the exponent add through n; the last select must keep NaN anyway
    bits = torch.tensor([0x7FC00123, 0x7F800001, -0x3FF, 0x7FFFFFFF, 0x7FC001FF] * 211, dtype=torch.int32)
    x = bits.view(torch.float32)
    for base2 in (False, True):
        assert _run(x, base2).isnan().all()
