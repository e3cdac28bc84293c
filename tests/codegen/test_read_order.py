"""Tiles loaded along their next-to-last dim (`ptr + k[:, None] + n[None, :] * stride`: the
transposed weight of a linear layer, a column-major input) are copied with that dim innermost, so
the reads are unit-stride; a `tl.dot` operand of that kind, or `tl.trans` of a tile, is copied as it
lies and handed to the product's transposed form. Results on masked, non-power-of-two shapes
against float64 torch, and the loop order and product form in the lowered IR."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from tilebridge.frontends.triton.lower import lower_module
from tilebridge.ir import nodes as n
from tilebridge.ir.passes import nested, subexpressions, unit_stride


@triton.jit
def linear_kernel(X, W, Y, M, N, K, sxm, swk, swn, sym, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """Y = X @ W with W through its strides: a weight stored (N, K) (swk = 1, as triton specializes a
    unit stride) has its (BK, BN) tile read down the columns."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        rk = k0 + tl.arange(0, BK)
        x = tl.load(X + rm[:, None] * sxm + rk[None, :], mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
        w = tl.load(W + rk[:, None] * swk + rn[None, :] * swn, mask=(rk[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(x, w)
    tl.store(Y + rm[:, None] * sym + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def column_sums_kernel(X, Out, M, N, sxn, BM: tl.constexpr, BN: tl.constexpr):
    """Sums of each row of a column-major (M, N) matrix, and of the squares. Where Out might overlap X
    (the kernel's general form), the tile is copied before the first store can change what it reads."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.arange(0, BN)
    inside = (rm[:, None] < M) & (rn[None, :] < N)
    x = tl.load(X + rm[:, None] + rn[None, :] * sxn, mask=inside, other=0.0)
    tl.store(Out + rm * 2, tl.sum(x, axis=1), mask=rm < M)
    tl.store(Out + rm * 2 + 1, tl.sum(x * x, axis=1), mask=rm < M)


def _copies(kernel: n.Kernel) -> list[tuple[n.For, list]]:
    """(loop, reads) for every innermost loop that copies global memory into a 2-D tile: its one
    statement writes a tile element indexed by this loop's variable and an outer one, from memory."""
    found = []

    def walk(body: list) -> None:
        for s in body:
            if isinstance(s, n.For) and len(s.body) == 1 and isinstance(s.body[0], n.BufWrite):
                write = s.body[0]
                reads = [e for e in subexpressions(write.value) if isinstance(e, n.MemRead)]
                others = {v for v in subexpressions(write.index) if isinstance(v, n.Var) and v != s.var}
                if reads and others and not any(isinstance(e, n.BufRead) for e in subexpressions(write.value)):
                    found.append((s, reads))
            walk(nested(s))
    walk(kernel.body)
    return found


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape, blocks", [((70, 45, 100), (32, 16, 32)), ((33, 130, 37), (16, 64, 16)),
                                           ((128, 128, 64), (64, 64, 32))])
def test_linear_with_a_transposed_weight(dtype: torch.dtype, shape: tuple, blocks: tuple) -> None:
    M, N, K = shape
    BM, BN, BK = blocks
    g = torch.Generator().manual_seed(M + N + K)
    x = torch.randn(M, K, generator=g).to(dtype)
    w = torch.randn(N, K, generator=g).to(dtype)
    y = torch.full((M, N), float("nan"))
    compiled = linear_kernel[(triton.cdiv(M, BM), triton.cdiv(N, BN))](x, w, y, M, N, K, x.stride(0), 1, w.stride(0), y.stride(0),
                                                                        BM=BM, BN=BN, BK=BK)
    torch.testing.assert_close(y.double(), x.double() @ w.double().t(), rtol=1e-4, atol=1e-4)
    kernel = lower_module(compiled.asm["ttir"]).kernel
    copies = _copies(kernel)
    # x is copied along its rows, w as it lies (its transpose, N x K): every copy loop reads and writes
    # unit-stride, vectorized, and the product is the form that takes B transposed.
    assert len(copies) >= 2
    assert all(loop.vectorize and unit_stride(r.pointer, loop.var) for loop, reads in copies for r in reads)
    assert _transposed_products(kernel)


def _transposed_products(kernel: n.Kernel) -> set[str]:
    """The routines the kernel calls on an operand taken as it lies, transposed (`tb_transpose32` for
    fp32, the bf16 product's `tb_dot_bf16_nt`)."""
    found = set()

    def walk(body: list) -> None:
        for s in body:
            if isinstance(s, n.Intrinsic) and s.name in ("tb_transpose32", "tb_dot_bf16_nt"):
                found.add(s.name)
            walk(nested(s))
    walk(kernel.body)
    return found


@triton.jit
def scores_kernel(Q, Kt, S, Norms, M, N, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, NORMS: tl.constexpr):
    """S = Q @ K^T as attention computes its scores: `tl.dot(q, tl.trans(k))` with k (N, D) row-major.
    NORMS first stores each key's squared norm through a pointer that may alias Kt, so k is copied
    into a tile before that store, and the product reads that tile as its transpose, where it is."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    rd = tl.arange(0, D)
    q = tl.load(Q + rm[:, None] * D + rd[None, :], mask=rm[:, None] < M, other=0.0)
    k = tl.load(Kt + rn[:, None] * D + rd[None, :], mask=rn[:, None] < N, other=0.0)
    if NORMS:
        kf = k.to(tl.float32)
        tl.store(Norms + rn, tl.sum(kf * kf, axis=1), mask=(rn < N) & (tl.program_id(0) == 0))
    s = tl.dot(q, tl.trans(k))
    tl.store(S + rm[:, None] * N + rn[None, :], s, mask=(rm[:, None] < M) & (rn[None, :] < N))


@pytest.mark.parametrize("norms", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape, blocks", [((70, 45, 32), (32, 16)), ((19, 100, 64), (16, 64))])
def test_dot_with_a_transposed_tile(dtype: torch.dtype, shape: tuple, blocks: tuple, norms: bool) -> None:
    M, N, D = shape
    BM, BN = blocks
    g = torch.Generator().manual_seed(M * N + D)
    q, k = torch.randn(M, D, generator=g).to(dtype), torch.randn(N, D, generator=g).to(dtype)
    s = torch.full((M, N), float("nan"))
    sq = torch.full((N,), float("nan"))
    compiled = scores_kernel[(triton.cdiv(M, BM), triton.cdiv(N, BN))](q, k, s, sq, M, N, D=D, BM=BM, BN=BN, NORMS=norms)
    torch.testing.assert_close(s.double(), q.double() @ k.double().t(), rtol=1e-4, atol=1e-3)
    kernel = lower_module(compiled.asm["ttir"]).kernel
    if norms:
        torch.testing.assert_close(sq.double(), (k.double() ** 2).sum(1), rtol=1e-5, atol=1e-5)
        # the general form (pointers that may overlap) holds k in a tile and hands that to the product
        assert not any(b.name.startswith("dot_lying") for b in kernel.buffers)
    assert _transposed_products(lower_module(compiled.asm["ttir"]).kernel)


def test_materialized_column_major_tile() -> None:
    M, N = 45, 27
    x = torch.randn(N, M, generator=torch.Generator().manual_seed(3)).t()  # strides (1, M)
    out = torch.full((M, 2), float("nan"))
    compiled = column_sums_kernel[(triton.cdiv(M, 16),)](x, out, M, N, x.stride(1), BM=16, BN=32)
    expected = torch.stack([x.double().sum(1), (x.double() ** 2).sum(1)], 1)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    general = [(loop, reads) for loop, reads in _copies(lower_module(compiled.asm["ttir"]).kernel)
               if not loop.var.name.startswith("d_")]  # the disjoint form reads x where each sum uses it
    assert general and all(unit_stride(r.pointer, loop.var) and not loop.vectorize for loop, reads in general for r in reads)


def test_row_major_tiles_keep_the_default_order() -> None:
    """Tiles read along their last dim keep that dim innermost and vectorized (W stored (K, N))."""
    M, N, K = 40, 50, 60
    x, wt = torch.randn(M, K), torch.randn(K, N)
    y = torch.empty(M, N)
    compiled = linear_kernel[(triton.cdiv(M, 16), triton.cdiv(N, 16))](x, wt, y, M, N, K, x.stride(0), N, 1,
                                                                       y.stride(0), BM=16, BN=16, BK=16)
    torch.testing.assert_close(y, x @ wt, rtol=1e-4, atol=1e-4)
    copies = _copies(lower_module(compiled.asm["ttir"]).kernel)
    assert copies and all(loop.vectorize and unit_stride(r.pointer, loop.var) for loop, reads in copies for r in reads)
