"""Two memory-traffic optimizations that must never change a result.

- Streaming stores: a contiguous output of 16 MiB or more over a launch is written in 64-byte lines
  of non-temporal stores, after an element-wise head up to the first aligned line and before an
  element-wise tail. Misaligned destinations, odd lengths and 2-byte elements exercise all three.
- Re-read loads: a loaded tile used several times is read again at each use instead of being copied
  into a buffer, unless a store may change memory before its last use: then it is copied first.
"""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl


@triton.jit
def scale_shift_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, (tl.maximum(x, -0.5) * 3.0).to(out_ptr.dtype.element_ty), mask=mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n", [257, 9_000_011])  # below and above the streaming threshold for both sizes
def test_streamed_output_matches_plain_stores(dtype: torch.dtype, n: int) -> None:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=g)
    storage = torch.full((n + 3,), float("nan"), dtype=dtype)
    out = storage[1:n + 1]  # starts 2 or 4 bytes past a line boundary: the head runs
    scale_shift_kernel[(triton.cdiv(n, 1000),)](x, out, n, BLOCK=1024)
    expected = (x.clamp_min(-0.5) * 3.0).to(dtype)
    assert torch.equal(out, expected)
    assert storage[0].isnan() and storage[n + 1:].isnan().all()  # nothing written outside


@triton.jit
def in_place_then_reuse_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask, other=0.0)
    total = tl.sum(x, axis=0)
    tl.store(x_ptr + offsets, x * 2.0, mask=mask)  # overwrites what x was loaded from
    tl.store(y_ptr + offsets, x + total, mask=mask)  # x is still the value loaded before


@triton.jit
def softmax_rows_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
    shifted = x - tl.max(x, axis=0)
    numerator = tl.exp(shifted)
    tl.store(out_ptr + row * n_cols + cols, numerator / tl.sum(numerator, axis=0), mask=cols < n_cols)


def test_reused_load_is_kept_before_a_store_to_its_source() -> None:
    x = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    original, y = x.clone(), torch.empty(1000)
    in_place_then_reuse_kernel[(1,)](x, y, 1000, BLOCK=1024)
    torch.testing.assert_close(x, original * 2.0)
    torch.testing.assert_close(y, original + original.sum(), rtol=1e-5, atol=1e-4)


def test_softmax_in_place_reads_its_row_before_writing_it() -> None:
    x = torch.randn(37, 3000, generator=torch.Generator().manual_seed(2))
    expected = torch.softmax(x, dim=1)
    softmax_rows_kernel[(37,)](x, x, 3000, BLOCK=4096)  # out is x: the row is re-read, never after the store
    torch.testing.assert_close(x, expected)
