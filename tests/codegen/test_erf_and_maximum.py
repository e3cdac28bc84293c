"""tl.erf (libdevice.erf) compiles to tilebridge's polynomial erf (tilebridge.h): within 1 ulp of erf
in double over a dense sweep and on special values, the same bits from vectorized and scalar code. And
tl.maximum / tl.minimum with PropagateNan.ALL (ATen's max/amax) give what Triton's interpreter gives:
a NaN operand wins, equal operands (+0 and -0 included) give the second; as a reduction, the NaN or
the same value."""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from tests.oracle import Case, Oracle


@triton.jit
def erf_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    tl.store(out_ptr + offsets, libdevice.erf(tl.load(x_ptr + offsets, mask=inside)), mask=inside)


@triton.jit
def scalar_erf_kernel(x_ptr, out_ptr):
    i = tl.program_id(0)  # one element a program: scalar C
    tl.store(out_ptr + i, tl.math.erf(tl.load(x_ptr + i)))


def _erf(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    erf_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    return out


def _ulps(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """How many floats lie between `got` and `want` rounded to float32 (0: the correctly rounded result)."""
    def ordinal(t: torch.Tensor) -> torch.Tensor:
        bits = t.float().view(torch.int32).long()
        return torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return (ordinal(got) - ordinal(want)).abs()


def test_erf_within_one_ulp() -> None:
    g = torch.Generator().manual_seed(11)
    x = torch.cat([torch.linspace(-6.0, 6.0, 2_000_001), torch.linspace(-1e-3, 1e-3, 100_001),
                   torch.randn(300_000, generator=g) * 2, torch.tensor([0.921875, -0.921875, 3.9999, 4.0, 4.0001])])
    x = torch.cat([x, torch.nextafter(x, torch.tensor(float("inf")))])  # both sides of the branch points
    assert _ulps(_erf(x), torch.erf(x.double())).max() <= 1


def test_erf_special_values() -> None:
    x = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-40, -1e-40, 3e-39, 10.0, -10.0] * 101)
    got = _erf(x)
    assert torch.equal(got[:4], torch.tensor([0.0, -0.0, 1.0, -1.0])) and got[:2].signbit().tolist() == [False, True]
    assert got[4].isnan() and got[8] == 1.0 and got[9] == -1.0
    assert _ulps(got[5:8], torch.erf(x[5:8].double())).max() <= 1  # subnormals: within one step of 2^-149


def test_erf_scalar_and_vectorized_agree_bit_for_bit() -> None:
    x = torch.cat([torch.linspace(-5.0, 5.0, 100_003), torch.tensor([float("nan"), float("inf"), -0.0])])
    vectorized, scalar = _erf(x), torch.empty_like(x)
    scalar_erf_kernel[(x.numel(),)](x, scalar)
    same = (vectorized.view(torch.int32) == scalar.view(torch.int32)) | (vectorized.isnan() & scalar.isnan())
    assert bool(same.all())


SOURCE = '''
import triton
import triton.language as tl


@triton.jit
def nan_max_kernel(A, B, Max, Min, RowMax, RowMin, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    a = tl.load(A + row * n_cols + cols, mask=inside, other=0.0)
    b = tl.load(B + row * n_cols + cols, mask=inside, other=0.0)
    tl.store(Max + row * n_cols + cols, tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL), mask=inside)
    tl.store(Min + row * n_cols + cols, tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL), mask=inside)
    x = tl.load(A + row * n_cols + cols, mask=inside, other=-float("inf"))
    tl.store(RowMax + row, tl.reduce(x, 0, _nan_max))
    y = tl.load(A + row * n_cols + cols, mask=inside, other=float("inf"))
    tl.store(RowMin + row, tl.reduce(y, 0, _nan_min))


@triton.jit
def _nan_max(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _nan_min(a, b):
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)
'''


def _maximum_args() -> list:
    rows, cols = 7, 1000
    g = torch.Generator().manual_seed(5)
    a = torch.randn(rows, cols, generator=g)
    b = torch.randn(rows, cols, generator=g)
    a[0, 17], b[1, 3], a[2, 999], b[2, 999] = float("nan"), float("nan"), float("nan"), float("nan")
    a[3, :10], b[3, :10] = torch.tensor([0.0, -0.0] * 5), torch.tensor([-0.0, 0.0] * 5)  # ties of signed zeros
    b[4, 100:200] = a[4, 100:200]  # equal operands
    a[5] = -0.0  # a row of zeros of both signs: which one the reduction keeps
    a[5, ::3] = 0.0
    a[6, 500] = float("nan")
    return [a, b, torch.empty(rows, cols), torch.empty(rows, cols), torch.empty(rows), torch.empty(rows), cols]


ORACLE = Oracle()
ORACLE.add("nan_max", Case(SOURCE, "nan_max_kernel", (7,), _maximum_args(), outputs=[2, 3, 4, 5],
                           constexprs={"BLOCK": 1024}))


def test_nan_propagating_maximum_matches_the_interpreter_bit_for_bit() -> None:
    expected = ORACLE.interpret_all()["nan_max"]
    assert not isinstance(expected, str), expected
    for name, got, want in zip(["maximum", "minimum", "max reduction", "min reduction"], ORACLE.cases["nan_max"].run(),
                               expected):
        if "reduction" in name:  # the order of a reduction is its own: ties of +0 and -0 may end either way
            same = (got == want) | (got.isnan() & want.isnan())
        else:
            same = (got.view(torch.int32) == want.view(torch.int32)) | (got.isnan() & want.isnan())
        assert bool(same.all()), (name, got[~same][:8], want[~same][:8])
