"""The benchmark kernels: ordinary Triton kernels, written as one would for a GPU, and their host wrappers.

They are our own, written for this suite, and cover the shapes a transformer spends its time in:
elementwise maps, row reductions and scans, fused normalizations, a loss, matrix products and fused
attention. Nothing here mentions the CPU; the same module runs under the Triton interpreter (the
suite's slow reference for "x interpreter"), which is why the kernels live at module level (Triton
reads a kernel's source from its file) and why the wrappers only allocate with `torch.empty`.

Conventions: one program per row for row-wise kernels (the row fits one power-of-two block), a 1-D
grid of blocks for elementwise kernels, 2-D output tiles for products. Everything accumulates in fp32.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv, next_power_of_2

ELEMENTWISE_BLOCK = 4096


# --- elementwise -----------------------------------------------------------------------------------------

@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """out = x + y; the mask guards the ragged last block."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    total = tl.load(x_ptr + offsets, mask=inside) + tl.load(y_ptr + offsets, mask=inside)
    tl.store(out_ptr + offsets, total, mask=inside)


@triton.jit
def gelu_tanh_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """GELU, tanh approximation: 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3).

    Written as x * sigmoid(2u) = x / (1 + exp(-2u)), the same function: one exp and one division,
    no libdevice call, and no cancellation in 1 + tanh(u) for negative x. exp(-2u) overflowing to
    inf gives x / inf = -0, GELU's limit there.
    """
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0)
    u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
    tl.store(out_ptr + offsets, x / (1.0 + tl.exp(-2.0 * u)), mask=inside)


@triton.jit
def swiglu_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """SwiGLU gate: silu(a) * b = a * sigmoid(a) * b, one pass over both inputs."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    a = tl.load(a_ptr + offsets, mask=inside, other=0.0)
    b = tl.load(b_ptr + offsets, mask=inside, other=0.0)
    tl.store(out_ptr + offsets, a / (1.0 + tl.exp(-a)) * b, mask=inside)


def _elementwise_grid(n: int, block: int) -> tuple[int]:
    return (cdiv(n, block),)


def vector_add(x: torch.Tensor, y: torch.Tensor, block: int = ELEMENTWISE_BLOCK, out: torch.Tensor | None = None) -> torch.Tensor:
    """x + y for contiguous 1-D tensors."""
    out = torch.empty_like(x) if out is None else out
    add_kernel[_elementwise_grid(x.numel(), block)](x, y, out, x.numel(), BLOCK=block)
    return out


def gelu_tanh(x: torch.Tensor, block: int = ELEMENTWISE_BLOCK, out: torch.Tensor | None = None) -> torch.Tensor:
    """GELU (tanh approximation) of a contiguous tensor."""
    out = torch.empty_like(x) if out is None else out
    gelu_tanh_kernel[_elementwise_grid(x.numel(), block)](x, out, x.numel(), BLOCK=block)
    return out


def swiglu(a: torch.Tensor, b: torch.Tensor, block: int = ELEMENTWISE_BLOCK, out: torch.Tensor | None = None) -> torch.Tensor:
    """silu(a) * b for contiguous tensors of one shape."""
    out = torch.empty_like(a) if out is None else out
    swiglu_kernel[_elementwise_grid(a.numel(), block)](a, b, out, a.numel(), BLOCK=block)
    return out


# --- row-wise: one program per row -----------------------------------------------------------------------

@triton.jit
def softmax_kernel(x_ptr, out_ptr, n_cols, row_stride, BLOCK: tl.constexpr):
    """Softmax of one row: the row is read once, max, exp, sum and scale fused in registers."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * row_stride + cols, mask=inside, other=-float("inf"))
    shifted = tl.exp(x - tl.max(x, axis=0))
    tl.store(out_ptr + row * row_stride + cols, shifted * (1.0 / tl.sum(shifted, axis=0)), mask=inside)


@triton.jit
def layer_norm_forward_kernel(x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, n_cols, eps, BLOCK: tl.constexpr):
    """y = (x - mean) * rstd * w + b for one row; mean and rstd are kept for the backward pass."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=inside, other=0.0)
    mean = tl.sum(x, axis=0) / n_cols
    centered = tl.where(inside, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=inside)
    b = tl.load(b_ptr + cols, mask=inside)
    tl.store(y_ptr + row * n_cols + cols, centered * rstd * w + b, mask=inside)
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def layer_norm_backward_dx_kernel(x_ptr, dy_ptr, w_ptr, mean_ptr, rstd_ptr, dx_ptr, partial_dw_ptr, partial_db_ptr,
                                  n_rows, n_cols, rows_per_program, BLOCK: tl.constexpr):
    """dx for a run of rows, fused; dw and db summed over the same rows into this program's partial row.

    Each program owns one row of the partial buffers, so no two programs write the same address and
    no atomics are needed; `layer_norm_backward_dwdb_kernel` adds the partial rows up afterwards.
    """
    program = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    w = tl.load(w_ptr + cols, mask=inside, other=0.0)
    dw = tl.zeros((BLOCK,), dtype=tl.float32)
    db = tl.zeros((BLOCK,), dtype=tl.float32)
    first = program * rows_per_program
    for i in range(rows_per_program):
        row = first + i
        if row < n_rows:
            offsets = row.to(tl.int64) * n_cols + cols
            x = tl.load(x_ptr + offsets, mask=inside, other=0.0)
            dy = tl.load(dy_ptr + offsets, mask=inside, other=0.0)
            mean = tl.load(mean_ptr + row)
            rstd = tl.load(rstd_ptr + row)
            x_hat = tl.where(inside, (x - mean) * rstd, 0.0)
            wdy = w * dy
            mean_wdy = tl.sum(wdy, axis=0) / n_cols
            mean_xhat_wdy = tl.sum(x_hat * wdy, axis=0) / n_cols
            tl.store(dx_ptr + offsets, (wdy - mean_wdy - x_hat * mean_xhat_wdy) * rstd, mask=inside)
            dw += dy * x_hat
            db += dy
    tl.store(partial_dw_ptr + program * n_cols + cols, dw, mask=inside)
    tl.store(partial_db_ptr + program * n_cols + cols, db, mask=inside)


@triton.jit
def layer_norm_backward_dwdb_kernel(partial_dw_ptr, partial_db_ptr, dw_ptr, db_ptr, n_partials, n_cols,
                                    BLOCK_PARTIALS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    """Second reduction: column sums of the partial buffers, one block of columns per program."""
    cols = tl.program_id(0) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    dw = tl.zeros((BLOCK_PARTIALS, BLOCK_COLS), dtype=tl.float32)
    db = tl.zeros((BLOCK_PARTIALS, BLOCK_COLS), dtype=tl.float32)
    for start in range(0, n_partials, BLOCK_PARTIALS):
        rows = start + tl.arange(0, BLOCK_PARTIALS)
        inside = (rows[:, None] < n_partials) & (cols[None, :] < n_cols)
        offsets = rows[:, None] * n_cols + cols[None, :]
        dw += tl.load(partial_dw_ptr + offsets, mask=inside, other=0.0)
        db += tl.load(partial_db_ptr + offsets, mask=inside, other=0.0)
    tl.store(dw_ptr + cols, tl.sum(dw, axis=0), mask=cols < n_cols)
    tl.store(db_ptr + cols, tl.sum(db, axis=0), mask=cols < n_cols)


@triton.jit
def rms_norm_kernel(x_ptr, w_ptr, y_ptr, n_cols, eps, BLOCK: tl.constexpr):
    """y = x / sqrt(mean(x^2) + eps) * w for one row."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=inside, other=0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=inside)
    tl.store(y_ptr + row * n_cols + cols, x * rstd * w, mask=inside)


@triton.jit
def cross_entropy_kernel(logits_ptr, target_ptr, loss_ptr, n_classes, BLOCK: tl.constexpr):
    """Per-row loss logsumexp(logits) - logits[target], streaming the row in blocks (vocabularies are wide).

    Online logsumexp over blocks: each block's maximum updates the row's, the sum so far is rescaled
    once per block, and each logit costs one exp; so each logit is read once from memory.
    """
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * n_classes
    row_max = -float("inf")
    total = 0.0
    for start in range(0, n_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(base + cols, mask=cols < n_classes, other=-float("inf"))
        new_max = tl.maximum(row_max, tl.max(x, axis=0))  # finite: every block holds at least one class
        total = total * tl.exp(row_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
        row_max = new_max
    target = tl.load(target_ptr + row)
    tl.store(loss_ptr + row, tl.log(total) + row_max - tl.load(base + target))


@triton.jit
def row_sum_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    """Sum of one row."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0)
    tl.store(out_ptr + row, tl.sum(x, axis=0))


@triton.jit
def row_max_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    """Maximum of one row."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
    tl.store(out_ptr + row, tl.max(x, axis=0))


@triton.jit
def row_cumsum_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    """Inclusive prefix sum along one row (tl.cumsum)."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=inside, other=0.0)
    tl.store(out_ptr + row * n_cols + cols, tl.cumsum(x, axis=0), mask=inside)


def softmax(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Row softmax of a contiguous 2-D tensor; the whole row is one block."""
    rows, cols = x.shape
    out = torch.empty_like(x) if out is None else out
    softmax_kernel[(rows,)](x, out, cols, x.stride(0), BLOCK=next_power_of_2(cols))
    return out


def layer_norm_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       eps: float = 1e-5, out: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layer norm over the last dimension; returns (y, mean, rstd) as `aten.native_layer_norm` does."""
    rows, cols = x.shape
    y, mean, rstd = (torch.empty_like(x), torch.empty(rows, 1), torch.empty(rows, 1)) if out is None else out
    layer_norm_forward_kernel[(rows,)](x, weight, bias, y, mean, rstd, cols, eps, BLOCK=next_power_of_2(cols))
    return y, mean, rstd


def layer_norm_backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor,
                        n_partials: int = 64, out: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dx, dw, db) of layer norm: a fused dx pass writing partial dw/db rows, then their column sums.

    `n_partials` programs share the rows: enough to keep every core busy, few enough that the
    second reduction reads little.
    """
    rows, cols = x.shape
    block = next_power_of_2(cols)
    n_partials = min(n_partials, rows)
    rows_per_program = cdiv(rows, n_partials)
    n_partials = cdiv(rows, rows_per_program)
    dx, dw, db = (torch.empty_like(x), torch.empty(cols), torch.empty(cols)) if out is None else out
    partial_dw, partial_db = torch.empty(n_partials, cols), torch.empty(n_partials, cols)
    layer_norm_backward_dx_kernel[(n_partials,)](x, dy, weight, mean, rstd, dx, partial_dw, partial_db,
                                                 rows, cols, rows_per_program, BLOCK=block)
    block_cols = min(block, 256)
    layer_norm_backward_dwdb_kernel[(cdiv(cols, block_cols),)](
        partial_dw, partial_db, dw, db, n_partials, cols, BLOCK_PARTIALS=16, BLOCK_COLS=block_cols)
    return dx, dw, db


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6, out: torch.Tensor | None = None) -> torch.Tensor:
    """RMSNorm over the last dimension."""
    rows, cols = x.shape
    y = torch.empty_like(x) if out is None else out
    rms_norm_kernel[(rows,)](x, weight, y, cols, eps, BLOCK=next_power_of_2(cols))
    return y


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, block: int = 2048, out: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row cross-entropy loss (reduction='none') of fp32 logits and int64 class indices."""
    rows, classes = logits.shape
    loss = torch.empty(rows) if out is None else out
    cross_entropy_kernel[(rows,)](logits, target, loss, classes, BLOCK=min(block, next_power_of_2(classes)))
    return loss


def _row_reduce(kernel: triton.JITFunction, x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    rows, cols = x.shape
    out = torch.empty(rows) if out is None else out
    kernel[(rows,)](x, out, cols, BLOCK=next_power_of_2(cols))
    return out


def row_sum(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over the last dimension of a contiguous 2-D tensor."""
    return _row_reduce(row_sum_kernel, x, out)


def row_max(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Maximum over the last dimension of a contiguous 2-D tensor."""
    return _row_reduce(row_max_kernel, x, out)


def row_cumsum(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Inclusive prefix sum over the last dimension of a contiguous 2-D tensor."""
    rows, cols = x.shape
    out = torch.empty_like(x) if out is None else out
    row_cumsum_kernel[(rows,)](x, out, cols, BLOCK=next_power_of_2(cols))
    return out


# --- matrix products ------------------------------------------------------------------------------------

@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    """C = A @ B with an fp32 accumulator, one BLOCK_M x BLOCK_N tile of C per program.

    Inputs may be fp32 or bf16 (tl.dot accumulates in fp32 either way). Programs are numbered in
    groups of GROUP_M tile rows, so programs that run at the same time share panels of A and B in
    the cache.
    """
    program = tl.program_id(0)
    tiles_m, tiles_n = tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N)
    group = program // (GROUP_M * tiles_n)
    first_m = group * GROUP_M
    group_rows = min(tiles_m - first_m, GROUP_M)
    tile_m = first_m + (program % (GROUP_M * tiles_n)) % group_rows
    tile_n = (program % (GROUP_M * tiles_n)) // group_rows
    rows = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tile_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    accumulator = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + ks
        a = tl.load(a_ptr + rows[:, None] * stride_am + kk[None, :] * stride_ak,
                    mask=(rows[:, None] < M) & (kk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + kk[:, None] * stride_bk + cols[None, :] * stride_bn,
                    mask=(kk[:, None] < K) & (cols[None, :] < N), other=0.0)
        accumulator = tl.dot(a, b, accumulator, input_precision="ieee")
    tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, accumulator,
             mask=(rows[:, None] < M) & (cols[None, :] < N))


def matmul_blocks(m: int, n: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) as an autotuning run on this CPU picks them: 256 x 256 tiles once the
    product has two of them for every thread (fewer copies of A and B per multiply-add: at 512 and 1000
    they beat 128 x 128 by 11-14%), else 64 x 64 (at 256^3, two threads, alternated 300 times: fp32
    0.189-0.199 ms against 0.196-0.227 with 128 x 128 x 32 and 0.190-0.215 with 128 x 64; bf16
    0.109-0.114 against 0.115-0.116 with 128 x 128 x 64); long K steps (C is loaded and stored once per
    step; for bf16, AMX takes K in steps of 32)."""
    if cdiv(m, 256) * cdiv(n, 256) >= 2 * torch.get_num_threads():
        return 256, 256, 128
    return 64, 64, 128


def matmul(a: torch.Tensor, b: torch.Tensor, block_m: int | None = None, block_n: int | None = None,
           block_k: int | None = None, group_m: int = 8, out: torch.Tensor | None = None) -> torch.Tensor:
    """A @ B into a new fp32 tensor (fp32 or bf16 inputs); blocks from `matmul_blocks` unless given."""
    (m, k), (_, n) = a.shape, b.shape
    tuned = matmul_blocks(m, n)
    block_m, block_n, block_k = block_m or tuned[0], block_n or tuned[1], block_k or tuned[2]
    c = torch.empty((m, n), dtype=torch.float32) if out is None else out
    grid = (cdiv(m, block_m) * cdiv(n, block_n),)
    matmul_kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
                        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=group_m)
    return c


@triton.jit
def attention_forward_kernel(q_ptr, k_ptr, v_ptr, out_ptr, seq_len, scale,
                             HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    """softmax(Q K^T * scale) V for one block of queries of one (batch, head), never forming the full scores.

    Keys and values stream past in blocks; the row maxima, row sums and output accumulator are
    rescaled whenever a larger maximum appears (online softmax). With CAUSAL, key blocks after the
    query block are skipped and the diagonal block is masked. Tensors are contiguous (B, H, S, D).
    """
    query_block = tl.program_id(0)
    head = tl.program_id(1).to(tl.int64)
    base = head * seq_len * HEAD_DIM
    queries = query_block * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + base + queries[:, None] * HEAD_DIM + dims[None, :], mask=queries[:, None] < seq_len, other=0.0)
    row_max = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
    row_sum = tl.zeros((BLOCK_M,), dtype=tl.float32)
    accumulator = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    q = q * (scale * 1.4426950408889634)  # fold log2(e) in, so the loop uses exp2
    stop = tl.minimum((query_block + 1) * BLOCK_M, seq_len) if CAUSAL else seq_len
    for start in range(0, stop, BLOCK_N):
        keys = start + tl.arange(0, BLOCK_N)
        k = tl.load(k_ptr + base + keys[:, None] * HEAD_DIM + dims[None, :], mask=keys[:, None] < seq_len, other=0.0)
        v = tl.load(v_ptr + base + keys[:, None] * HEAD_DIM + dims[None, :], mask=keys[:, None] < seq_len, other=0.0)
        scores = tl.dot(q, tl.trans(k), input_precision="ieee")
        visible = keys[None, :] < seq_len
        if CAUSAL:
            visible = visible & (keys[None, :] <= queries[:, None])
        scores = tl.where(visible, scores, -float("inf"))
        new_max = tl.maximum(row_max, tl.max(scores, axis=1))
        p = tl.exp2(scores - new_max[:, None])
        correction = tl.exp2(row_max - new_max)
        row_sum = row_sum * correction + tl.sum(p, axis=1)
        accumulator = accumulator * correction[:, None] + tl.dot(p, v, input_precision="ieee")
        row_max = new_max
    out = accumulator / row_sum[:, None]
    tl.store(out_ptr + base + queries[:, None] * HEAD_DIM + dims[None, :], out, mask=queries[:, None] < seq_len)


def attention_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                      block_m: int | None = None, block_n: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention of contiguous (batch, heads, seq, head_dim) fp32 tensors.

    Blocks as CPU sweeps pick them: 256 queries (128 with the causal mask, whose blocks do unequal
    work, so smaller ones balance the threads better), and 128 keys at head_dim 64 (64 at 128, so the
    score, probability and accumulator tiles stay within the L2 cache). At 1x8x1024x128, 256 queries
    ran 24.9-25.3 ms against 25.7-25.8 with 128; causal, 128 queries 15.3-15.6 against 16.7-16.8."""
    batch, heads, seq_len, head_dim = q.shape
    block_m = block_m or (128 if causal else 256)
    block_n = block_n or (128 if head_dim <= 64 else 64)
    out = torch.empty_like(q) if out is None else out
    grid = (cdiv(seq_len, block_m), batch * heads)
    attention_forward_kernel[grid](q, k, v, out, seq_len, 1.0 / math.sqrt(head_dim),
                                   HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n, CAUSAL=causal)
    return out
