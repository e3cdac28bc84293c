"""Matrix products: mm, bmm, addmm, baddbmm, as one tiled `tl.dot` kernel over a batch of (M, K) x (K, N).

Operands are read through their strides (a transposed weight needs no copy); fp32 accumulates with
IEEE-exact products (`input_precision="ieee"`, never TF32, to match ATen on every device), 16-bit
inputs accumulate in fp32 too. `addmm`'s beta * bias + alpha * product is the kernel's epilogue, the
bias broadcast through strides (stride 0 where it is a row or a column).
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv, next_power_of_2
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import bind, out_argument
from tilebridge.ops.registry import FLOATS, Decline, register

CATEGORY = "matmul"
LARGE = (256, 256, 128)  # 256 x 256 tiles, long K steps: fewer trips of A and B per multiply-add
ROW_TILES = (16, 32, 64, 128)  # rows of a tile below LARGE
# Each K step copies a tile of B, costing about as much as this many rows of multiply-adds: a tile of few
# rows computes few masked rows (76 rows: 80 in 16-row tiles, 128 in one 128-row tile) but pays that copy
# over fewer rows. `blocks_for` takes the row count with the least of the two together.
B_COPY_ROWS = 8


def blocks_for(m: int, n: int, k: int, batch: int) -> tuple[int, int, int]:
    """Tile sizes for a batch of M x N products, as measured on this project's machine (one and two
    threads, plain and transposed weights). LARGE once M and N both reach 256 and the tiles share out
    evenly over the threads (512 x 1024 -> 256: 1.00-1.01x ATen, 0.94-0.96x with 128 x 256 x 64;
    256 x 768 -> 768 at two threads, nine tiles: 0.81x). Otherwise tiles of 16 to 128 rows and 64 or
    128 columns, whichever `_tile_cost` finds least (a linear layer 768 -> 768 at 96 rows: 32-row
    tiles 1.41 ms, 16-row 1.69; at 128 rows, 128-row tiles 1.62 ms, 16-row 2.20, ATen 1.51; 76 x 384
    -> 384 at two threads: 30 tiles of 16 x 64 0.19 ms, 9 of 32 x 128 0.22), with K steps of 64 (128
    for 16 rows). Tiles no wider than N, rounded up to a power of two; K steps that pad K by at most
    30% where they can (a weight gradient over 76 rows, 2 threads: 0.86 ms with 32-long steps, 1.04
    with 128; ATen 0.58)."""
    tiles, threads = cdiv(m, LARGE[0]) * cdiv(n, LARGE[1]) * batch, torch.get_num_threads()
    if min(m, n) >= 256 and cdiv(tiles, threads) * threads <= 1.1 * tiles:  # no thread idles > 10%
        block_m, block_n, block_k = LARGE
    else:
        widest = min(128, max(32, next_power_of_2(n)))
        block_m, block_n = min(((rows, cols) for rows in ROW_TILES for cols in {widest, max(32, widest // 2)}),
                               key=lambda tile: (_tile_cost(m, n, batch, threads, *tile), -tile[0], -tile[1]))
        block_k = 128 if block_m == 16 else 64
    block_k = min(block_k, max(16, next_power_of_2(k)))
    while block_k > 16 and cdiv(k, block_k) * block_k > 1.3 * k:  # K = 76: 32-long steps (96), not 128
        block_k //= 2
    return block_m, block_n, block_k


def _tile_cost(m: int, n: int, batch: int, threads: int, rows: int, cols: int) -> float:
    """The work of M x N in rows x cols tiles, padding and each K step's copies counted (`B_COPY_ROWS`
    rows' or columns' worth), over the share of the busiest thread."""
    programs = cdiv(m, rows) * cdiv(n, cols) * batch
    work = cdiv(m, rows) * (rows + B_COPY_ROWS) * cdiv(n, cols) * (cols + B_COPY_ROWS)
    return work * cdiv(programs, threads) * threads / programs


# The inner strides (sak, sbn, scn) stay specialized: a unit stride makes the tile loads contiguous.
_INTS = ["M", "N", "K", "sab", "sbb", "scb", "scm", "alpha", "beta"]


@launchable
@triton.jit(do_not_specialize=_INTS)
def matmul_kernel(a_ptr, b_ptr, c_ptr, out_ptr, M, N, K, sab, sam, sak, sbb, sbk, sbn, scb, scm, scn, alpha, beta,
                  HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """out[b] = beta * c[b] + alpha * a[b] @ b[b]; out is contiguous (batch, M, N)."""
    batch = tl.program_id(2).to(tl.int64)
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_in, col_in = rows < M, cols < N
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for start in range(0, K, BLOCK_K):
        ks = start + tl.arange(0, BLOCK_K)
        k_in = ks < K
        a = tl.load(a_ptr + batch * sab + rows.to(tl.int64)[:, None] * sam + ks.to(tl.int64)[None, :] * sak,
                    mask=row_in[:, None] & k_in[None, :], other=0.0)
        b = tl.load(b_ptr + batch * sbb + ks.to(tl.int64)[:, None] * sbk + cols.to(tl.int64)[None, :] * sbn,
                    mask=k_in[:, None] & col_in[None, :], other=0.0)
        if a.dtype == tl.float32:
            acc += tl.dot(a, b, input_precision="ieee")
        else:
            acc += tl.dot(a, b)
    inside = row_in[:, None] & col_in[None, :]
    result = acc * alpha
    if HAS_BIAS:
        c = tl.load(c_ptr + batch * scb + rows.to(tl.int64)[:, None] * scm + cols.to(tl.int64)[None, :] * scn, mask=inside,
                    other=0.0).to(tl.float32)
        result += tl.where(beta == 0, 0.0, beta * c)
    tl.store(out_ptr + batch * M * N + rows.to(tl.int64)[:, None] * N + cols.to(tl.int64)[None, :],
             result.to(out_ptr.dtype.element_ty), mask=inside)


def product(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None, alpha: float = 1.0, beta: float = 1.0,
            out: torch.Tensor | None = None) -> torch.Tensor:
    """Batched (B, M, K) @ (B, K, N) [+ bias broadcast to (B, M, N)]; 2-D operands are a batch of one."""
    batched = a.dim() == 3
    a3, b3 = (a, b) if batched else (a.unsqueeze(0), b.unsqueeze(0))
    if a3.dim() != 3 or b3.dim() != 3 or a3.shape[0] != b3.shape[0] or a3.shape[2] != b3.shape[1]:
        raise Decline("shapes: ATen's error")
    if a.dtype not in FLOATS or b.dtype != a.dtype or (bias is not None and bias.dtype != a.dtype):
        raise Decline("dtypes")
    batch, M, K = a3.shape
    N = b3.shape[2]
    shape = (batch, M, N) if batched else (M, N)
    if out is not None:
        if tuple(out.shape) != shape or out.dtype != a.dtype or not out.is_contiguous():
            raise Decline("out= needs a resize or a cast")
    else:
        out = torch.empty(shape, dtype=a.dtype)
    if out.numel() == 0:
        return out
    if bias is not None:
        try:
            c3 = bias.expand(shape) if batched else bias.expand(shape).unsqueeze(0)
        except RuntimeError as error:
            raise Decline("bias does not broadcast: ATen's error") from error
        scb, scm, scn = c3.stride()
    else:
        c3, (scb, scm, scn) = a3, (0, 0, 0)
    block_m, block_n, block_k = blocks_for(M, N, K, batch)
    grid = (cdiv(M, block_m), cdiv(N, block_n), batch)
    matmul_kernel[grid](a3, b3, c3, out, M, N, K, *a3.stride(), *b3.stride(), scb, scm, scn, float(alpha), float(beta),
                        HAS_BIAS=bias is not None and beta != 0, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return out


def _wrapper(overload: str, has_bias: bool):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    out_name = out_argument(schema)
    batched = packet.rstrip("_") == "baddbmm"  # baddbmm_ too
    first, second = ("batch1", "batch2") if batched else (("mat1", "mat2") if has_bias else ("self", "mat2"))

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        bound = bind(schema, args, kwargs)
        a, b = bound[first], bound[second]
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.dim() != (3 if "bmm" in packet else 2):
            raise Decline("ranks: ATen's error")
        alpha, beta = bound.get("alpha", 1), bound.get("beta", 1)
        if isinstance(alpha, complex) or isinstance(beta, complex):
            raise Decline("complex scalars")
        out = bound.get(out_name) if out_name else None
        if packet.endswith("_"):
            out = bound["self"]
        return product(a, b, bound["self"] if has_bias else None, float(alpha), float(beta), out)

    return wrapper


for _overload, _bias in [("mm", False), ("mm.out", False), ("bmm", False), ("bmm.out", False), ("addmm", True),
                         ("addmm.out", True), ("addmm_", True), ("baddbmm", True), ("baddbmm.out", True), ("baddbmm_", True)]:
    register(_overload, _wrapper(_overload, _bias), FLOATS, CATEGORY)
