"""Benchmark cases for TileLang kernels on tilebridge: a GEMM and a flash-attention forward written in
TileLang's GPU style, at the sizes of the Triton `matmul` and `attention` cases, in the same run.

The kernels use the same tiles as their Triton twins in `kernels.py` (256 x 256 x 128 GEMM tiles from
1024 up, 128 queries by 128 keys of attention at head_dim 64, 64 keys at 128), so the comparison is of
the two frontends' lowering, not of tile choices. Each case is timed against PyTorch like every
other case; `summary_lines` adds the TileLang / Triton speed ratio of each pair of cases measured in
the run. The cases exist only where tilelang is installed. The kernels live in this module file
because TileLang's parser reads kernel source with `inspect`; no `from __future__ import annotations`
here, since the parser then cannot see sizes that only the annotations use.
"""
import functools
import math
from typing import Any

import torch
import torch.nn.functional as F

from tilebridge.bench.cases import COMPUTE, FLOAT, Case, Workload, _outputs, _random, attention_cases
from tilebridge.bench.kernels import matmul_blocks

# case family → the Triton case family it is paired with
TWINS = {"tilelang_matmul": "matmul", "tilelang_attention": "attention"}


def available() -> bool:
    import importlib.util
    return importlib.util.find_spec("tilelang") is not None


@functools.cache
def gemm_kernel(m: int, n: int, k: int) -> Any:
    import tilelang.language as T

    import tilebridge.frontends.tilelang as tilebridge_tilelang
    block_m, block_n, block_k = matmul_blocks(m, n)  # the Triton GEMM's tiles

    @T.prim_func
    def gemm(A: T.Tensor((m, k), "float32"), B: T.Tensor((k, n), "float32"), C: T.Tensor((m, n), "float32")):
        with T.Kernel(T.ceildiv(n, block_n), T.ceildiv(m, block_m), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_m, block_k), "float32")
            B_shared = T.alloc_shared((block_k, block_n), "float32")
            C_local = T.alloc_fragment((block_m, block_n), "float32")
            T.clear(C_local)
            for step in T.Pipelined(T.ceildiv(k, block_k), num_stages=3):
                T.copy(A[by * block_m, step * block_k], A_shared)
                T.copy(B[step * block_k, bx * block_n], B_shared)
                T.gemm(A_shared, B_shared, C_local)
            T.copy(C_local, C[by * block_m, bx * block_n])
    return tilebridge_tilelang.compile(gemm, out_idx=[2])


@functools.cache
def attention_kernel(batch: int, heads: int, seq_len: int, head_dim: int, causal: bool) -> Any:
    """Flash attention forward (online softmax) on contiguous (batch, heads, seq, head_dim) fp32 tensors."""
    import tilelang.language as T

    import tilebridge.frontends.tilelang as tilebridge_tilelang
    block_m, block_n = 128, (128 if head_dim <= 64 else 64)
    scale = 1.0 / math.sqrt(head_dim) * 1.4426950408889634  # log2(e): exp2 in the loop
    shape = (batch, heads, seq_len, head_dim)

    @T.prim_func
    def attention(Q: T.Tensor(shape, "float32"), K: T.Tensor(shape, "float32"), V: T.Tensor(shape, "float32"),
                  Out: T.Tensor(shape, "float32")):
        with T.Kernel(T.ceildiv(seq_len, block_m), heads, batch, threads=128) as (bx, by, bz):
            Q_shared = T.alloc_shared((block_m, head_dim), "float32")
            K_shared = T.alloc_shared((block_n, head_dim), "float32")
            V_shared = T.alloc_shared((block_n, head_dim), "float32")
            scores = T.alloc_fragment((block_m, block_n), "float32")
            acc = T.alloc_fragment((block_m, head_dim), "float32")
            row_max = T.alloc_fragment((block_m,), "float32")
            row_max_prev = T.alloc_fragment((block_m,), "float32")
            rescale = T.alloc_fragment((block_m,), "float32")
            row_sum = T.alloc_fragment((block_m,), "float32")
            total = T.alloc_fragment((block_m,), "float32")
            T.copy(Q[bz, by, bx * block_m:(bx + 1) * block_m, :], Q_shared)
            T.fill(acc, 0)
            T.fill(total, 0)
            T.fill(row_max, -T.infinity("float32"))
            steps = (T.min(T.ceildiv(seq_len, block_n), T.ceildiv((bx + 1) * block_m, block_n)) if causal
                     else T.ceildiv(seq_len, block_n))
            for step in T.Pipelined(steps, num_stages=2):
                T.copy(K[bz, by, step * block_n:(step + 1) * block_n, :], K_shared)
                if causal:
                    for i, j in T.Parallel(block_m, block_n):
                        scores[i, j] = T.if_then_else(bx * block_m + i >= step * block_n + j, 0, -T.infinity("float32"))
                else:
                    T.clear(scores)
                T.gemm(Q_shared, K_shared, scores, transpose_B=True)
                T.copy(row_max, row_max_prev)
                T.reduce_max(scores, row_max, dim=1, clear=False)
                for i in T.Parallel(block_m):
                    rescale[i] = T.exp2(row_max_prev[i] * scale - row_max[i] * scale)
                for i, j in T.Parallel(block_m, block_n):
                    scores[i, j] = T.exp2(scores[i, j] * scale - row_max[i] * scale)
                T.reduce_sum(scores, row_sum, dim=1)
                for i in T.Parallel(block_m):
                    total[i] = total[i] * rescale[i] + row_sum[i]
                for i, j in T.Parallel(block_m, head_dim):
                    acc[i, j] *= rescale[i]
                T.copy(V[bz, by, step * block_n:(step + 1) * block_n, :], V_shared)
                T.gemm(scores, V_shared, acc)
            for i, j in T.Parallel(block_m, head_dim):
                acc[i, j] /= total[i]
            T.copy(acc, Out[bz, by, bx * block_m:(bx + 1) * block_m, :])
    return tilebridge_tilelang.compile(attention, out_idx=[3])


def matmul(m: int, n: int, k: int) -> Workload:
    """The TileLang GEMM against `torch.mm`, inputs and tolerance as the Triton `matmul` case."""
    a, b = _random(m, k, seed=21), _random(k, n, seed=22)
    out, ref = _outputs(torch.empty(m, n))
    kernel = gemm_kernel(m, n, k)
    return Workload(lambda: kernel(a, b, out), lambda: torch.mm(a, b, out=ref),
                    (m * k + k * n + m * n) * FLOAT, 2 * m * n * k, m * n, {"rtol": 1e-4, "atol": 1e-5 * k})


def attention(batch: int, heads: int, seq_len: int, head_dim: int, causal: bool) -> Workload:
    """The TileLang flash attention against SDPA, inputs and work as the Triton `attention` case."""
    q, k, v = (_random(batch, heads, seq_len, head_dim, seed=25 + i) for i in range(3))
    kernel = attention_kernel(batch, heads, seq_len, head_dim, causal)
    flops = 4 * batch * heads * seq_len * seq_len * head_dim // (2 if causal else 1)
    return Workload(lambda: kernel(q, k, v), lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                    4 * q.numel() * FLOAT, flops, batch * heads * seq_len * seq_len, {"rtol": 1e-4, "atol": 1e-4})


def cases(quick: bool) -> list[Case]:
    """The TileLang cases of the suite (none without tilelang)."""
    if not available():
        return []
    table = [Case("tilelang_matmul", f"{s}x{s}x{s}", COMPUTE, lambda s=s: matmul(s, s, s))
             for s in ((1024, 2048) if not quick else (64, 100))]
    return table + attention_cases("tilelang_attention", attention, quick)


def summary_lines(results: list) -> list[str]:
    """One line: TileLang / Triton speed (Triton time / TileLang time) of each case pair in this run."""
    by_name = {(r.kernel, r.shape): r for r in results}
    pairs = []
    for result in results:
        twin = by_name.get((TWINS.get(result.kernel), result.shape))
        if twin is not None and result.ok and twin.ok:
            pairs.append(f"{result.kernel.removeprefix('tilelang_')} {result.shape} "
                         f"{twin.tilebridge_s / result.tilebridge_s:.2f}x")
    return ["TileLang speed relative to Triton on tilebridge (same run, Triton time / TileLang time): "
            + ", ".join(pairs)] if pairs else []
