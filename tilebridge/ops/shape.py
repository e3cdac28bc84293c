"""Shape operators: cat, stack, repeat, constant_pad_nd, flip, tril, triu.

All of them move bits (a tensor is viewed as the integer type of its element size, so every dtype of
one size shares a compiled kernel). cat and stack copy each input into its slice of the output with
`copy_kernel`, whose two operands collapse to a rank of at most 4 (`strided.Layout`), so the common
layouts run as one or two flat loops. repeat, constant_pad_nd, flip, tril and triu are one `remap_kernel`:
each output element finds its input element dim by dim, from a small table of sizes and strides.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.ops.indexing import bits, plain, result, scalar_tensor, wrap
from tilebridge.ops.registry import ALL, Decline, register
from tilebridge.ops.strided import BLOCK, MAX_ELEMENTS, Layout, has_internal_overlap, strided_offset

CATEGORY = "shape"
_INTS = ["n", "s1", "s2", "s3"] + [f"t{o}{d}" for o in range(2) for d in range(4)]


@triton.jit(do_not_specialize=_INTS)
def copy_kernel(out_ptr, in_ptr, n, s1, s2, s3, t00, t01, t02, t03, t10, t11, t12, t13, RANK: tl.constexpr,
                CONTIGUOUS: tl.constexpr, BLOCK: tl.constexpr):
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = index < n
    if CONTIGUOUS:
        out_offset = index.to(tl.int64)
        in_offset = index.to(tl.int64)
    else:
        out_offset = strided_offset(index, s1, s2, s3, t00, t01, t02, t03, RANK)
        in_offset = strided_offset(index, s1, s2, s3, t10, t11, t12, t13, RANK)
    tl.store(out_ptr + out_offset, tl.load(in_ptr + in_offset, mask=inside), mask=inside)


# Columns of remap_kernel's table, one row per output dim.
SIZE, IN_SIZE, IN_STRIDE, OUT_STRIDE, PARAM = range(5)


@triton.jit(do_not_specialize=["n", "fill", "diagonal"])
def remap_kernel(out_ptr, in_ptr, table_ptr, n, fill, diagonal, MODE: tl.constexpr, RANK: tl.constexpr,
                 BLOCK: tl.constexpr):
    """out[coords] = in[source(coords)] over RANK dims, the last dim first. MODE: repeat (coord % in size),
    flip (reversed where PARAM != 0), pad (coord - PARAM, `fill` outside the input), tril/triu (zero
    above/below the `diagonal` of the last two dims)."""
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = index < n
    rest = index
    out_offset = tl.zeros([BLOCK], tl.int64)
    in_offset = tl.zeros([BLOCK], tl.int64)
    valid = inside
    column = tl.zeros([BLOCK], tl.int32)
    row = tl.zeros([BLOCK], tl.int32)
    for d in tl.static_range(RANK):
        row_of_table = table_ptr + (RANK - 1 - d) * 5
        size = tl.load(row_of_table + 0).to(tl.int32)
        in_size = tl.load(row_of_table + 1).to(tl.int32)
        coord = rest % size
        rest = rest // size
        out_offset += coord.to(tl.int64) * tl.load(row_of_table + 3)
        if MODE == "repeat":
            source = coord % in_size
        elif MODE == "flip":
            source = tl.where(tl.load(row_of_table + 4) != 0, in_size - 1 - coord, coord)
        elif MODE == "pad":
            source = coord - tl.load(row_of_table + 4).to(tl.int32)
            valid = valid & (source >= 0) & (source < in_size)
        else:
            source = coord
        in_offset += source.to(tl.int64) * tl.load(row_of_table + 2)
        if d == 0:
            column = coord
        if d == 1:
            row = coord
    if MODE == "tril":
        valid = valid & (column - row <= diagonal)
    elif MODE == "triu":
        valid = valid & (column - row >= diagonal)
    values = tl.load(in_ptr + in_offset, mask=valid, other=0)
    if MODE == "pad":
        values = tl.where(valid, values, fill)
    tl.store(out_ptr + out_offset, values.to(out_ptr.dtype.element_ty), mask=inside)


# --- host side ------------------------------------------------------------------------------------------------

def copy_into(out: torch.Tensor, source: torch.Tensor) -> None:
    """out[...] = source (same shape), bit for bit, through any strides."""
    if out.numel() == 0:
        return
    layout = Layout(bits(out), [bits(source)])
    copy_kernel[layout.grid()](*layout.args(), RANK=layout.rank, CONTIGUOUS=layout.contiguous, BLOCK=BLOCK)


def remap(mode: str, out: torch.Tensor, source: torch.Tensor, in_sizes: list[int], in_strides: list[int],
          params: list[int] | None = None, fill: int = 0, diagonal: int = 0) -> None:
    """Run `remap_kernel` over `out` (any strides); the input's sizes and strides are given per output dim."""
    n = out.numel()
    if n == 0:
        return
    if n > MAX_ELEMENTS or out.dim() > 8:
        raise Decline("more than int32 indexing or 8 dims")
    rank = 4 if out.dim() <= 4 else 8
    pad = rank - out.dim()
    params = params or [0] * out.dim()
    rows = [[1, 1, 0, 0, 0]] * pad + [list(r) for r in zip(out.shape, in_sizes, in_strides, out.stride(), params)]
    table = torch.tensor(rows, dtype=torch.int64)
    remap_kernel[(triton.cdiv(n, BLOCK),)](bits(out), bits(source), table, n, fill, diagonal, MODE=mode, RANK=rank,
                                          BLOCK=BLOCK)


def _dim(dim: int, rank: int) -> int:
    if not -rank <= dim < rank:
        raise Decline("dim out of range: ATen's error")
    return dim % rank


# --- cat and stack ------------------------------------------------------------------------------------------

def _inputs(tensors: Any) -> list[torch.Tensor]:
    """The tensors of a cat/stack: one claimed dtype for all, plain CPU layouts."""
    tensors = [plain(t) for t in tensors]
    if not tensors or len({t.dtype for t in tensors}) != 1:
        raise Decline("no tensors, or dtypes to promote: ATen's")
    return tensors


def cat(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    tensors = _inputs(bound["tensors"])
    shaped = [t for t in tensors if not (t.dim() == 1 and t.shape[0] == 0)]  # ATen skips legacy empty (0,) inputs
    if not shaped:
        raise Decline("only empty inputs")
    rank = shaped[0].dim()
    if rank == 0:
        raise Decline("zero-dim inputs: ATen's error")
    dim = _dim(bound["dim"], rank)
    shape = list(shaped[0].shape)
    for t in shaped:
        if t.dim() != rank or any(a != b for d, (a, b) in enumerate(zip(t.shape, shape)) if d != dim):
            raise Decline("shapes differ: ATen's error")
    shape[dim] = sum(t.shape[dim] for t in shaped)
    if out is None and rank == 4 and all(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
                                         for t in shaped):
        raise Decline("channels-last result: ATen's layout")
    target = result(out, shape, tensors[0].dtype, *tensors)
    start = 0
    for t in shaped:
        copy_into(target.narrow(dim, start, t.shape[dim]), t)
        start += t.shape[dim]
    return target


def stack(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    tensors = _inputs(bound["tensors"])
    if any(t.shape != tensors[0].shape for t in tensors):
        raise Decline("shapes differ: ATen's error")
    dim = _dim(bound["dim"], tensors[0].dim() + 1)
    shape = list(tensors[0].shape)
    shape.insert(dim, len(tensors))
    target = result(out, shape, tensors[0].dtype, *tensors)
    for i, t in enumerate(tensors):
        copy_into(target.select(dim, i), t)
    return target


# --- repeat, constant_pad_nd, flip --------------------------------------------------------------------------

def repeat(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    x, repeats = plain(bound["self"]), [int(r) for r in bound["repeats"]]
    if len(repeats) < x.dim() or any(r < 0 for r in repeats):
        raise Decline("fewer repeats than dims, or negative: ATen's error")
    pad = len(repeats) - x.dim()
    sizes, strides = [1] * pad + list(x.shape), [0] * pad + list(x.stride())
    target = result(out, [s * r for s, r in zip(sizes, repeats)], x.dtype, x)
    remap("repeat", target, x, sizes, strides)
    return target


def constant_pad_nd(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    x, pads = plain(bound["self"]), [int(p) for p in bound["pad"]]
    if len(pads) % 2 or len(pads) > 2 * x.dim():
        raise Decline("odd or too long pad: ATen's error")
    before = [0] * x.dim()
    shape = list(x.shape)
    for i in range(len(pads) // 2):
        d = x.dim() - 1 - i
        before[d] = pads[2 * i]
        shape[d] += pads[2 * i] + pads[2 * i + 1]
    if any(s < 0 for s in shape):
        raise Decline("negative output size: ATen's error")
    fill = scalar_tensor(bound.get("value", 0), x.dtype)
    fill_bits = int(bits(fill.view(1))[0])
    target = result(out, shape, x.dtype, x)
    remap("pad", target, x, list(x.shape), list(x.stride()), before, fill=fill_bits)
    return target


def flip(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    x = plain(bound["self"])
    dims = [_dim(d, max(x.dim(), 1)) for d in bound["dims"]]
    if len(set(dims)) != len(dims):
        raise Decline("repeated dim: ATen's error")
    target = result(out, list(x.shape), x.dtype, x)
    if x.dim() == 0:
        copy_into(target, x)
        return target
    remap("flip", target, x, list(x.shape), list(x.stride()), [int(d in dims) for d in range(x.dim())])
    return target


# --- tril, triu ---------------------------------------------------------------------------------------------

def _triangle(mode: str):
    def body(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
        x = plain(bound["self"])
        if x.dim() < 2:
            raise Decline("needs a matrix: ATen's error")
        if inplace:
            if has_internal_overlap(x):
                raise Decline("in-place target overlaps itself")
            target = x
        else:
            target = result(out, list(x.shape), x.dtype, x)
        remap(mode, target, x, list(x.shape), list(x.stride()), diagonal=int(bound.get("diagonal", 0)))
        return target

    return body


for _overload in ("cat", "cat.out"):
    register(_overload, wrap(_overload, cat), ALL, CATEGORY)
for _overload in ("stack", "stack.out"):
    register(_overload, wrap(_overload, stack), ALL, CATEGORY)
for _overload, _body in [("repeat", repeat), ("repeat.out", repeat), ("constant_pad_nd", constant_pad_nd),
                         ("constant_pad_nd.out", constant_pad_nd), ("flip", flip), ("flip.out", flip)]:
    register(_overload, wrap(_overload, _body), ALL, CATEGORY)
for _mode in ("tril", "triu"):
    for _overload in (_mode, f"{_mode}.out", f"{_mode}_"):
        register(_overload, wrap(_overload, _triangle(_mode)), ALL, CATEGORY)
