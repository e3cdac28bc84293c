"""Shape operators: cat, stack, repeat, constant_pad_nd, flip, tril, triu.

All of them move bits (a tensor is viewed as the integer type of its element size, so every dtype of
one size shares a compiled kernel), through one `remap_kernel`: a program owns one row of the output
(every dim but the last) and a block of its last dim. The row's coordinates are worked out once per
program, in scalars, from a small table of sizes and strides; the last dim is a plain vector loop, with
no division per element. cat, stack and repeat are copies between two strided views (repeat's input
view has stride 0 over the repetitions), with their dims merged where both layouts allow it first.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.indexing import bits, plain, result, scalar_tensor, wrap
from tilebridge.ops.launching import launchable
from tilebridge.ops.registry import ALL, Decline, register
from tilebridge.ops.strided import MAX_ELEMENTS, collapse, has_internal_overlap

CATEGORY = "shape"
_RUNTIME = ["fill", "diagonal", "triangle", "last", "in_size", "in_stride", "out_stride", "flip", "shift"]


@launchable
@triton.jit(do_not_specialize=_RUNTIME, do_not_specialize_on_alignment=["out_ptr", "in_ptr"])
def remap_kernel(out_ptr, in_ptr, table_ptr, fill, diagonal, triangle, last, in_size, in_stride, out_stride, flip,
                 shift, RANK: tl.constexpr, UNIT: tl.constexpr, BLOCK: tl.constexpr):
    """out[row, column] = in[source(row), source(column)], `fill` where the source falls outside the input.

    Per dim, the source coordinate is the output's (reversed where `flip`) minus `shift`. The table has RANK
    rows (size, input size, input stride, output stride, flip, shift) for the dims before the last, whose
    values come as scalars. `triangle` 1 keeps column - row <= diagonal (tril), -1 keeps >= (triu), 0 all.
    UNIT: the last dim is a plain copy of stride 1 on both sides. Modes are runtime values, so one compiled
    kernel per element size serves every shape op."""
    rest = tl.program_id(0).to(tl.int64)
    out_offset = rest * 0
    in_offset = rest * 0
    row_inside = rest == rest
    row = rest * 0
    for d in tl.static_range(RANK):
        entry = table_ptr + (RANK - 1 - d) * 6
        size = tl.load(entry)
        dim_in = tl.load(entry + 1)
        coord = rest % size
        rest = rest // size
        out_offset += coord * tl.load(entry + 3)
        source = tl.where(tl.load(entry + 4) != 0, dim_in - 1 - coord, coord) - tl.load(entry + 5)
        row_inside = row_inside & (source >= 0) & (source < dim_in)
        in_offset += source * tl.load(entry + 2)
        if d == 0:
            row = coord
    columns = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = columns < last
    valid = inside & row_inside & ((columns - row) * triangle <= diagonal * triangle)
    if UNIT:
        values = tl.load(in_ptr + in_offset + columns, mask=valid, other=0)
    else:
        source = tl.where(flip != 0, in_size - 1 - columns, columns) - shift
        valid = valid & (source >= 0) & (source < in_size)
        values = tl.load(in_ptr + in_offset + source.to(tl.int64) * in_stride, mask=valid, other=0)
    values = tl.where(valid, values, fill).to(out_ptr.dtype.element_ty)
    if UNIT:
        tl.store(out_ptr + out_offset + columns, values, mask=inside)
    else:
        tl.store(out_ptr + out_offset + columns.to(tl.int64) * out_stride, values, mask=inside)


# --- host side ------------------------------------------------------------------------------------------------

def remap(out: torch.Tensor, source: torch.Tensor, shape: list[int], out_strides: list[int], in_sizes: list[int],
          in_strides: list[int], flips: list[int] | None = None, shifts: list[int] | None = None, fill: int = 0,
          diagonal: int = 0, triangle: int = 0) -> None:
    """Run `remap_kernel` over `shape` (out's, or a finer view of it), given per dim: out's strides, the input's
    sizes and strides, which dims flip and by how much the input shifts (a pad's leading width)."""
    n = out.numel()
    if n == 0:
        return
    flips, shifts = flips or [0] * len(shape), shifts or [0] * len(shape)
    if n > MAX_ELEMENTS or len(shape) > 9:
        raise Decline("more than int32 indexing or 9 dims")
    if not shape:
        shape, out_strides, in_sizes, in_strides, flips, shifts = [1], [0], [1], [0], [0], [0]
    leading = [list(r) for r in zip(shape, in_sizes, in_strides, out_strides, flips, shifts)][:-1]
    rank = 3 if len(leading) <= 3 else 8
    table = torch.tensor([[1, 1, 0, 0, 0, 0]] * (rank - len(leading)) + leading, dtype=torch.int64)
    last, block = shape[-1], (1024 if shape[-1] > 256 else 64)
    unit = in_strides[-1] == 1 and out_strides[-1] == 1 and not flips[-1] and not shifts[-1] and in_sizes[-1] >= last
    remap_kernel[(n // last, cdiv(last, block))](bits(out), bits(source), table, fill, diagonal, triangle, last,
                                                        in_sizes[-1], in_strides[-1], out_strides[-1], flips[-1],
                                                        shifts[-1], RANK=rank, UNIT=unit, BLOCK=block)


def copy_into(out: torch.Tensor, source: torch.Tensor, shape: list[int] | None = None,
              in_strides: list[int] | None = None, out_strides: list[int] | None = None) -> None:
    """out[...] = source, bit for bit, through any strides (given ones describe a finer view), dims merged first."""
    shape = list(out.shape) if shape is None else shape
    strides = [list(out.stride()) if out_strides is None else out_strides,
               list(source.stride()) if in_strides is None else in_strides]
    sizes, (merged_out, merged_in) = collapse(shape, strides)
    remap(out, source, sizes, merged_out, sizes, merged_in)


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
    # out viewed as (r0, s0, r1, s1, ...): the input repeats with stride 0 along each r
    shape = [n for r, s in zip(repeats, sizes) for n in (r, s)]
    out_strides = [n for s, t in zip(sizes, target.stride()) for n in (s * t, t)]
    in_strides = [n for t in strides for n in (0, t)]
    copy_into(target, x, shape, in_strides, out_strides)
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
    remap(target, x, shape, list(target.stride()), list(x.shape), list(x.stride()), shifts=before, fill=fill_bits)
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
    remap(target, x, list(x.shape), list(target.stride()), list(x.shape), list(x.stride()),
          flips=[int(d in dims) for d in range(x.dim())])
    return target


# --- tril, triu ---------------------------------------------------------------------------------------------

TRIANGLES = {"tril": 1, "triu": -1}  # keep (column - row) * t <= diagonal * t

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
        remap(target, x, list(x.shape), list(target.stride()), list(x.shape), list(x.stride()),
              diagonal=int(bound.get("diagonal", 0)), triangle=TRIANGLES[mode])
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
