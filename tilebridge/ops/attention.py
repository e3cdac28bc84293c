"""Scaled dot-product attention as flash attention: the (L, S) score matrix is never formed in memory.

On CPU tensors `F.scaled_dot_product_attention` reaches the CPU key as
`_scaled_dot_product_flash_attention_for_cpu` (a boolean mask was already made additive above it),
which returns the output and the row log-sum-exp that autograd saves for
`_scaled_dot_product_flash_attention_for_cpu_backward`. Both are served here for 4-D (B, H, L, E)
inputs read through their strides, fp32/fp16/bf16 with fp32 softmax and accumulation, causal
(top-left aligned, as ATen) or not, with an optional additive mask broadcast over (B, H, L, S).
Dropout is declined: ATen's random stream cannot be reproduced. A row that sees no key (every score
-inf) gives output 0 and log-sum-exp 0, as ATen's kernel does, so its gradient is 0 too.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv, next_power_of_2
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import bind
from tilebridge.ops.registry import FLOATS, Decline, register

CATEGORY = "attention"
LOG2E = 1.4426950408889634
_INTS = ["H", "L", "S", "E"] + [f"{t}_{d}" for t in ("q", "k", "v", "m", "o", "do", "dq", "dk", "dv") for d in "bhse"] + [
    "l_b", "l_h", "l_s"]
_POINTERS = ["q_ptr", "k_ptr", "v_ptr", "mask_ptr", "out_ptr", "lse_ptr", "grad_ptr", "delta_ptr", "dq_ptr", "dk_ptr", "dv_ptr"]


def _jit(fn):
    """Specialize on dtypes and constexprs only: sizes and strides never multiply compiles."""
    names = fn.__code__.co_varnames
    return launchable(triton.jit(fn, do_not_specialize=[n for n in _INTS + ["scale"] if n in names],
                                 do_not_specialize_on_alignment=[n for n in _POINTERS if n in names]))


@triton.jit
def _product(a, b):
    """a @ b with fp32 accumulation; fp32 operands multiply exactly (never TF32), to match ATen."""
    if a.dtype == tl.float32:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _scores(q, k, mask_ptr, b, h, rows, cols, row_in, col_in, m_b, m_h, m_s, scale,
            CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr):
    """(q k^T * scale + mask) in base-2 units (times log2 e, so the softmax uses exp2); hidden keys are -inf."""
    scores = _product(q, tl.trans(k)) * (scale * 1.4426950408889634)
    if HAS_MASK:
        offsets = b * m_b + h * m_h + rows.to(tl.int64)[:, None] * m_s + cols.to(tl.int64)[None, :]
        bias = tl.load(mask_ptr + offsets).to(tl.float32)  # padded to whole blocks: no predicate (2x faster)
        scores += bias * 1.4426950408889634
    visible = col_in[None, :]
    if CAUSAL:
        visible = visible & (cols[None, :] <= rows[:, None])
    return tl.where(visible, scores, -float("inf"))


@triton.jit
def _tile(ptr, b, h, rows, dims, row_in, dim_in, s_b, s_h, s_s, s_e):
    offsets = b * s_b + h * s_h + rows.to(tl.int64)[:, None] * s_s + dims.to(tl.int64)[None, :] * s_e
    return ptr + offsets, row_in[:, None] & dim_in[None, :]


@_jit
def attention_forward_kernel(q_ptr, k_ptr, v_ptr, mask_ptr, out_ptr, lse_ptr, H, L, S, E, scale,
                             q_b, q_h, q_s, q_e, k_b, k_h, k_s, k_e, v_b, v_h, v_s, v_e, m_b, m_h, m_s,
                             o_b, o_h, o_s, o_e, l_b, l_h, l_s, CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr,
                             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """One block of queries of one (batch, head): keys and values stream past with an online softmax."""
    block = tl.program_id(0)
    b = (tl.program_id(1) // H).to(tl.int64)
    h = (tl.program_id(1) % H).to(tl.int64)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, BLOCK_D)
    row_in, dim_in = rows < L, dims < E
    at, inside = _tile(q_ptr, b, h, rows, dims, row_in, dim_in, q_b, q_h, q_s, q_e)
    q = tl.load(at, mask=inside, other=0.0)
    row_max = tl.full([BLOCK_M], -float("inf"), tl.float32)
    row_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    stop = tl.minimum((block + 1) * BLOCK_M, S) if CAUSAL else S
    for start in range(0, stop, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_in = cols < S
        k_at, k_inside = _tile(k_ptr, b, h, cols, dims, col_in, dim_in, k_b, k_h, k_s, k_e)
        k = tl.load(k_at, mask=k_inside, other=0.0)
        v_at, v_inside = _tile(v_ptr, b, h, cols, dims, col_in, dim_in, v_b, v_h, v_s, v_e)
        v = tl.load(v_at, mask=v_inside, other=0.0)
        scores = _scores(q, k, mask_ptr, b, h, rows, cols, row_in, col_in, m_b, m_h, m_s, scale, CAUSAL, HAS_MASK)
        new_max = tl.maximum(row_max, tl.max(scores, 1))
        shift = tl.where(new_max == -float("inf"), 0.0, new_max)  # a row with nothing visible yet stays 0, not NaN
        p = tl.exp2(scores - shift[:, None])
        correction = tl.exp2(row_max - shift)
        row_sum = row_sum * correction + tl.sum(p, 1)
        acc = acc * correction[:, None] + _product(p.to(v.dtype), v)
        row_max = new_max
    seen = row_sum > 0.0
    out = tl.where(seen[:, None], acc / tl.where(seen, row_sum, 1.0)[:, None], 0.0)
    at, inside = _tile(out_ptr, b, h, rows, dims, row_in, dim_in, o_b, o_h, o_s, o_e)
    tl.store(at, out.to(out_ptr.dtype.element_ty), mask=inside)
    lse = tl.where(seen, (row_max + tl.log2(tl.where(seen, row_sum, 1.0))) * 0.6931471805599453, 0.0)
    tl.store(lse_ptr + b * l_b + h * l_h + rows.to(tl.int64) * l_s, lse, mask=row_in)


@triton.jit
def _scores_transposed(k, q_t, mask_ptr, b, h, rows, cols, row_in, col_in, m_b, m_h, m_s, scale,
                       CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr):
    """`_scores` transposed, (keys, queries), from a transposed q tile: dot operands stay as loaded."""
    scores = _product(k, q_t) * (scale * 1.4426950408889634)
    if HAS_MASK:
        offsets = b * m_b + h * m_h + cols.to(tl.int64)[:, None] + rows.to(tl.int64)[None, :] * m_s
        bias = tl.load(mask_ptr + offsets).to(tl.float32)
        scores += bias * 1.4426950408889634
    visible = col_in[:, None]
    if CAUSAL:
        visible = visible & (cols[:, None] <= rows[None, :])
    return tl.where(visible, scores, -float("inf"))


@_jit
def attention_backward_kv_kernel(q_ptr, k_ptr, v_ptr, mask_ptr, grad_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr, H, L, S, E,
                                 scale, q_b, q_h, q_s, q_e, k_b, k_h, k_s, k_e, v_b, v_h, v_s, v_e, m_b, m_h, m_s,
                                 do_b, do_h, do_s, do_e, l_b, l_h, l_s, dk_b, dk_h, dk_s, dk_e,
                                 CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr,
                                 BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """dK and dV of one block of keys: the queries that see it stream past, P recomputed from the saved log-sum-exp.

    dV = P^T dO, dK = scale * dS^T Q with dS = P * (dO V^T - delta), delta = rowsum(dO * O) from the dQ kernel.
    Everything is computed transposed, (keys, queries), so only loaded tiles (q, dO) are transposed for a
    dot, never a computed one. dK and dV share one layout.
    """
    block = tl.program_id(0)
    b = (tl.program_id(1) // H).to(tl.int64)
    h = (tl.program_id(1) % H).to(tl.int64)
    cols = block * BLOCK_N + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, BLOCK_D)
    col_in, dim_in = cols < S, dims < E
    at, inside = _tile(k_ptr, b, h, cols, dims, col_in, dim_in, k_b, k_h, k_s, k_e)
    k = tl.load(at, mask=inside, other=0.0)
    at, inside = _tile(v_ptr, b, h, cols, dims, col_in, dim_in, v_b, v_h, v_s, v_e)
    v = tl.load(at, mask=inside, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    first = (block * BLOCK_N // BLOCK_M) * BLOCK_M if CAUSAL else 0
    for start in range(first, L, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        row_in = rows < L
        q_at, q_inside = _tile(q_ptr, b, h, rows, dims, row_in, dim_in, q_b, q_h, q_s, q_e)
        q = tl.load(q_at, mask=q_inside, other=0.0)
        q_t = tl.trans(q)
        g_at, g_inside = _tile(grad_ptr, b, h, rows, dims, row_in, dim_in, do_b, do_h, do_s, do_e)
        grad = tl.load(g_at, mask=g_inside, other=0.0)
        grad_t = tl.trans(grad)
        row_stats = b * H * L + h * L + rows.to(tl.int64)
        delta = tl.load(delta_ptr + row_stats, mask=row_in, other=0.0)
        lse = tl.load(lse_ptr + b * l_b + h * l_h + rows.to(tl.int64) * l_s, mask=row_in, other=0.0)
        scores = _scores_transposed(k, q_t, mask_ptr, b, h, rows, cols, row_in, col_in, m_b, m_h, m_s, scale, CAUSAL,
                                    HAS_MASK)
        p = tl.where(row_in[None, :], tl.exp2(scores - (lse * 1.4426950408889634)[None, :]), 0.0)
        dv += _product(p.to(grad.dtype), grad)
        ds = p * (_product(v, grad_t) - delta[None, :])
        dk += _product(ds.to(q.dtype), q)
    at, inside = _tile(dk_ptr, b, h, cols, dims, col_in, dim_in, dk_b, dk_h, dk_s, dk_e)
    tl.store(at, (dk * scale).to(dk_ptr.dtype.element_ty), mask=inside)
    at, inside = _tile(dv_ptr, b, h, cols, dims, col_in, dim_in, dk_b, dk_h, dk_s, dk_e)
    tl.store(at, dv.to(dv_ptr.dtype.element_ty), mask=inside)


@_jit
def attention_backward_q_kernel(q_ptr, k_ptr, v_ptr, mask_ptr, out_ptr, grad_ptr, lse_ptr, delta_ptr, dq_ptr, H, L, S, E,
                                scale,
                                q_b, q_h, q_s, q_e, k_b, k_h, k_s, k_e, v_b, v_h, v_s, v_e, m_b, m_h, m_s,
                                o_b, o_h, o_s, o_e, do_b, do_h, do_s, do_e, l_b, l_h, l_s, dq_b, dq_h, dq_s, dq_e,
                                CAUSAL: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr,
                                BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """dQ = scale * dS K of one block of queries, the keys streaming past as in the forward (no atomics needed).

    It also writes delta = rowsum(dO * O) (fp32, contiguous (B, H, L)) for the dK/dV kernel, which runs after it.
    """
    block = tl.program_id(0)
    b = (tl.program_id(1) // H).to(tl.int64)
    h = (tl.program_id(1) % H).to(tl.int64)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, BLOCK_D)
    row_in, dim_in = rows < L, dims < E
    at, inside = _tile(q_ptr, b, h, rows, dims, row_in, dim_in, q_b, q_h, q_s, q_e)
    q = tl.load(at, mask=inside, other=0.0)
    at, inside = _tile(grad_ptr, b, h, rows, dims, row_in, dim_in, do_b, do_h, do_s, do_e)
    grad = tl.load(at, mask=inside, other=0.0)
    at, inside = _tile(out_ptr, b, h, rows, dims, row_in, dim_in, o_b, o_h, o_s, o_e)
    delta = tl.sum(grad.to(tl.float32) * tl.load(at, mask=inside, other=0.0).to(tl.float32), 1)
    tl.store(delta_ptr + b * H * L + h * L + rows.to(tl.int64), delta, mask=row_in)
    lse = tl.load(lse_ptr + b * l_b + h * l_h + rows.to(tl.int64) * l_s, mask=row_in, other=0.0) * 1.4426950408889634
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    stop = tl.minimum((block + 1) * BLOCK_M, S) if CAUSAL else S
    for start in range(0, stop, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        col_in = cols < S
        k_at, k_inside = _tile(k_ptr, b, h, cols, dims, col_in, dim_in, k_b, k_h, k_s, k_e)
        k = tl.load(k_at, mask=k_inside, other=0.0)
        v_at, v_inside = _tile(v_ptr, b, h, cols, dims, col_in, dim_in, v_b, v_h, v_s, v_e)
        v = tl.load(v_at, mask=v_inside, other=0.0)
        scores = _scores(q, k, mask_ptr, b, h, rows, cols, row_in, col_in, m_b, m_h, m_s, scale, CAUSAL, HAS_MASK)
        p = tl.exp2(scores - lse[:, None])
        ds = p * (_product(grad, tl.trans(v)) - delta[:, None])
        dq += _product(ds.to(k.dtype), k)
    at, inside = _tile(dq_ptr, b, h, rows, dims, row_in, dim_in, dq_b, dq_h, dq_s, dq_e)
    tl.store(at, (dq * scale).to(dq_ptr.dtype.element_ty), mask=inside)


def _blocks(L: int, S: int, E: int) -> tuple[int, int, int]:
    """Query and key blocks of up to 128 (64 keys past head dim 64, so the tiles stay in L2); at least 16 for tl.dot."""
    block_d = max(16, next_power_of_2(E))
    block_m = min(128 if block_d <= 64 else 64, max(16, next_power_of_2(L)))
    block_n = min(128 if block_d <= 64 else 64, max(16, next_power_of_2(S)))
    return block_m, block_n, block_d


def _check(q: Any, k: Any, v: Any, mask: Any, dropout_p: float) -> None:
    """Decline everything ATen's kernel rejects or that this kernel does not do, so ATen answers (or raises)."""
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)) or dropout_p != 0.0:
        raise Decline("dropout needs ATen's random stream")
    if q.dtype not in FLOATS or k.dtype != q.dtype or v.dtype != q.dtype or q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise Decline("dtypes or ranks")
    (B, H, L, E), S = q.shape, k.shape[2]
    if tuple(k.shape) != (B, H, S, E) or tuple(v.shape) != (B, H, S, E) or min(B, H, L, S, E) == 0 or E > 256:
        raise Decline("shapes")
    if mask is not None:
        if mask.dtype not in (q.dtype, torch.float32) or mask.dim() not in (2, 4):
            raise Decline("mask dtype or rank: ATen's error")
        try:
            torch.broadcast_shapes(mask.shape, (B, H, L, S))
        except RuntimeError as error:
            raise Decline("mask does not broadcast") from error


def _mask_strides(mask: torch.Tensor | None, shape: tuple[int, int, int, int],
                  blocks: tuple[int, int]) -> tuple[torch.Tensor | None, tuple]:
    """The mask, zero-padded to whole (BLOCK_M, BLOCK_N) blocks, and its (B, H, L) strides (S is contiguous).

    Its broadcast batch and head dims stay stride 0. The kernels then read mask tiles with no predicate:
    with one, a masked 64 x 64 attention ran 2.7x slower than an unmasked one. The copy is one pass over
    the mask, which the kernels read once per query block anyway.
    """
    if mask is None:
        return None, (0, 0, 0)
    B, H, L, S = shape
    full = mask.expand(shape)
    batch, heads = (B if full.stride(0) else 1), (H if full.stride(1) else 1)
    padded = torch.zeros((batch, heads, cdiv(L, blocks[0]) * blocks[0], cdiv(S, blocks[1]) * blocks[1]),
                         dtype=mask.dtype)
    padded[:, :, :L, :S] = full[:batch, :heads]
    view = padded.expand(B, H, *padded.shape[2:])
    return view, view.stride()[:3]


def _lse(B: int, H: int, L: int) -> torch.Tensor:
    """fp32 (B, H, L) laid out (B, L, H) in memory, as ATen allocates it."""
    return torch.empty((B, L, H), dtype=torch.float32).transpose(1, 2)


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    mask: torch.Tensor | None = None, scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, logsumexp) of softmax(q k^T * scale + mask) v over (B, H, L, E) tensors; the output has q's layout."""
    _check(q, k, v, mask, 0.0)
    (B, H, L, E), S = q.shape, k.shape[2]
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    out = torch.empty_like(q)
    lse = _lse(B, H, L)
    block_m, block_n, block_d = _blocks(L, S, E)
    mask_view, mask_strides = _mask_strides(mask, (B, H, L, S), (block_m, block_n))
    grid = (cdiv(L, block_m), B * H)
    attention_forward_kernel[grid](q, k, v, mask_view if mask_view is not None else q, out, lse, H, L, S, E, scale,
                                   *q.stride(), *k.stride(), *v.stride(), *mask_strides, *out.stride(), *lse.stride(),
                                   CAUSAL=bool(causal), HAS_MASK=mask is not None, BLOCK_M=block_m, BLOCK_N=block_n,
                                   BLOCK_D=block_d)
    return out, lse


def _forward(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    bound = bind(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default._schema, args, kwargs)
    q, k, v, mask = bound["query"], bound["key"], bound["value"], bound.get("attn_mask")
    _check(q, k, v, mask, float(bound["dropout_p"]))
    return flash_attention(q, k, v, bool(bound["is_causal"]), mask, bound.get("scale"))


register("_scaled_dot_product_flash_attention_for_cpu", _forward, FLOATS, CATEGORY)


def flash_attention_backward(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                             lse: torch.Tensor, causal: bool = False, mask: torch.Tensor | None = None,
                             scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) of `flash_attention`, each laid out (B, L, H, E) in memory as ATen's kernel returns them."""
    _check(q, k, v, mask, 0.0)
    (B, H, L, E), S = q.shape, k.shape[2]
    if grad.shape != q.shape or out.shape != q.shape or grad.dtype != q.dtype or out.dtype != q.dtype:
        raise Decline("grad_out or out shape/dtype")
    if lse.shape != (B, H, L) or lse.dtype != torch.float32:
        raise Decline("logsumexp shape/dtype")
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    dq, dk, dv = (torch.empty((B, n, H, E), dtype=q.dtype).transpose(1, 2) for n in (L, S, S))
    block_m, block_n, block_d = _blocks(L, S, E)
    mask_view, mask_strides = _mask_strides(mask, (B, H, L, S), (block_m, block_n))
    common = (H, L, S, E, scale, *q.stride(), *k.stride(), *v.stride(), *mask_strides, *out.stride(), *grad.stride(),
              *lse.stride())
    options = dict(CAUSAL=bool(causal), HAS_MASK=mask is not None, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d)
    mask_arg = mask_view if mask_view is not None else q
    delta = torch.empty((B, H, L), dtype=torch.float32)
    attention_backward_q_kernel[(cdiv(L, block_m), B * H)](q, k, v, mask_arg, out, grad, lse, delta, dq, *common,
                                                                 *dq.stride(), **options)
    kv_strides = (*q.stride(), *k.stride(), *v.stride(), *mask_strides, *grad.stride(), *lse.stride(), *dk.stride())
    attention_backward_kv_kernel[(cdiv(S, block_n), B * H)](q, k, v, mask_arg, grad, lse, delta, dk, dv, H, L, S, E,
                                                                  scale, *kv_strides, **options)
    return dq, dk, dv


def _backward(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    bound = bind(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default._schema, args, kwargs)
    q, k, v, mask = bound["query"], bound["key"], bound["value"], bound.get("attn_mask")
    _check(q, k, v, mask, float(bound["dropout_p"]))
    return flash_attention_backward(bound["grad_out"], q, k, v, bound["out"], bound["logsumexp"], bool(bound["is_causal"]),
                                    mask, bound.get("scale"))


register("_scaled_dot_product_flash_attention_for_cpu_backward", _backward, FLOATS, CATEGORY)
