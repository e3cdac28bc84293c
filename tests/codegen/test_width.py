"""Which kernels compile for 256-bit vectors: those whose vectorized loops only move data
(`tilebridge/codegen/width.py` has the measurements); kernels that compute keep the full width.
Each kernel also runs and matches torch, so a width choice can never change a result."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from tilebridge.codegen.width import PRAGMA


@triton.jit
def row_stats_kernel(x_ptr, out_ptr, n_cols, OP: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0)
    if OP == "sum":
        result = tl.sum(x, axis=0)
    elif OP == "max_abs":
        result = tl.max(tl.abs(x), axis=0)
    elif OP == "sum_exp":
        result = tl.sum(tl.where(cols < n_cols, tl.exp(x), 0.0), axis=0)
    elif OP == "sum_ratio":
        result = tl.sum(x / (1.0 + x * x), axis=0)
    else:  # "exp_of_sum": the exp is one scalar per row, outside every vectorized loop
        result = tl.exp(tl.sum(x, axis=0) * 0.001)
    tl.store(out_ptr + row, result)


REFERENCES = {
    "sum": (lambda x: x.sum(1), True),
    "max_abs": (lambda x: x.abs().amax(1), True),
    "exp_of_sum": (lambda x: torch.exp(x.sum(1) * 0.001), True),
    "sum_exp": (lambda x: x.exp().sum(1), False),
    "sum_ratio": (lambda x: (x / (1 + x * x)).sum(1), False),
}


@pytest.mark.parametrize("op", list(REFERENCES))
def test_streaming_kernels_get_256_bit_vectors(op: str) -> None:
    reference, streams = REFERENCES[op]
    x = torch.randn(37, 1000, generator=torch.Generator().manual_seed(5))
    out = torch.empty(37)
    compiled = row_stats_kernel[(37,)](x, out, 1000, OP=op, BLOCK=1024)
    torch.testing.assert_close(out, reference(x), rtol=1e-5, atol=1e-4)
    assert (PRAGMA in compiled.asm["c"]) == streams


@triton.jit
def tile_product_kernel(a_ptr, b_ptr, c_ptr, BLOCK: tl.constexpr):
    idx = tl.arange(0, BLOCK)
    a = tl.load(a_ptr + idx[:, None] * BLOCK + idx[None, :])
    b = tl.load(b_ptr + idx[:, None] * BLOCK + idx[None, :])
    tl.store(c_ptr + idx[:, None] * BLOCK + idx[None, :], tl.dot(a, b))


def test_a_dot_keeps_the_full_width() -> None:
    g = torch.Generator().manual_seed(6)
    a, b, c = torch.randn(32, 32, generator=g), torch.randn(32, 32, generator=g), torch.empty(32, 32)
    compiled = tile_product_kernel[(1,)](a, b, c, BLOCK=32)
    torch.testing.assert_close(c, a @ b, rtol=1e-4, atol=1e-4)
    assert PRAGMA not in compiled.asm["c"]
