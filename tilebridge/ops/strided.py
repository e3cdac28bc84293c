"""Layouts on the host: broadcasting, dimension collapsing and the strided-offset helper kernels use.

Kernels see at most `MAX_RANK` dimensions. The host first broadcasts every operand to the output's
shape (stride 0 where broadcast), drops size-1 dimensions and merges neighbours that are contiguous
for every operand at once (what ATen's TensorIterator does), so almost every real layout collapses to
rank 1 or 2. A layout that still has more dimensions is made contiguous on the host first.
"""
from __future__ import annotations

from numbers import Number

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.registry import Decline

MAX_RANK = 4
MAX_ELEMENTS = 2**31 - 1  # flat indices are int32 inside the kernels
BLOCK = 1024


def collapse(shape: list[int], strides: list[list[int]]) -> tuple[list[int], list[list[int]]]:
    """Merge dimensions that are contiguous for every operand; drop size-1 dimensions."""
    keep = [d for d, size in enumerate(shape) if size != 1]
    sizes = [shape[d] for d in keep]
    operand_strides = [[s[d] for d in keep] for s in strides]
    if not sizes:
        return [1], [[1] for _ in strides]
    merged_sizes = [sizes[-1]]
    merged = [[s[-1]] for s in operand_strides]
    for d in range(len(sizes) - 2, -1, -1):
        if all(s[d] == m[0] * merged_sizes[0] for s, m in zip(operand_strides, merged)):
            merged_sizes[0] *= sizes[d]
        else:
            merged_sizes.insert(0, sizes[d])
            for s, m in zip(operand_strides, merged):
                m.insert(0, s[d])
    return merged_sizes, merged


def has_internal_overlap(t: torch.Tensor) -> bool:
    """True when two elements of `t` share memory (a stride 0 over more than one element, say)."""
    return any(stride == 0 and size > 1 for size, stride in zip(t.shape, t.stride()))


class Layout:
    """The launch arguments of an elementwise kernel over `out` and `inputs` (already broadcast to out)."""

    def __init__(self, out: torch.Tensor, inputs: list[torch.Tensor]):
        if out.numel() > MAX_ELEMENTS:
            raise Decline("more elements than int32 indexing covers")
        shape = list(out.shape)
        operands = [out] + [t.expand(shape) for t in inputs]
        sizes, strides = collapse(shape, [list(t.stride()) for t in operands])
        if len(sizes) > MAX_RANK:
            operands = [out] + [t.contiguous() for t in operands[1:]]
            sizes, strides = collapse(shape, [list(t.stride()) for t in operands])
            if len(sizes) > MAX_RANK:
                raise Decline("output layout of more than 4 non-mergeable dimensions")
        self.tensors = operands
        self.numel = out.numel()
        self.rank = len(sizes)
        dense = [1]
        for size in reversed(sizes[1:]):
            dense.insert(0, dense[0] * size)
        # per tensor, out first: "c" laid out as the flat index, "s" one element for every index, "g" strided
        self.kinds = "".join("s" if not any(s) else "c" if all(t == d for t, d, z in zip(s, dense, sizes) if z != 1)
                             else "g" for s in strides)
        pad = MAX_RANK - self.rank
        self.sizes = [1] * pad + sizes
        self.strides = [[0] * pad + s for s in strides]

    @classmethod
    def contiguous(cls, out: torch.Tensor, inputs: list[torch.Tensor]) -> Layout:
        """The layout of a contiguous `out` and inputs that are each contiguous of out's shape ("c") or
        one element ("s"), as `Layout(out, inputs)` finds it, without broadcasting or collapsing."""
        self = cls.__new__(cls)
        self.tensors = [out, *inputs]
        self.numel = out.numel()
        if self.numel > MAX_ELEMENTS:
            raise Decline("more elements than int32 indexing covers")
        self.rank = 1
        self.kinds = "c" + "".join("c" if t.dim() and t.numel() == self.numel else "s" for t in inputs)
        self.sizes = [1, 1, 1, self.numel]
        self.strides = [[0, 0, 0, 1 if kind == "c" else 0] for kind in self.kinds]
        return self

    def grid(self, block: int = BLOCK) -> tuple[int]:
        return (cdiv(self.numel, block),)

    def args(self) -> list:
        """Pointers, then n and sizes 1..3, then four strides per operand (out first)."""
        flat_strides = [s for operand in self.strides for s in operand]
        return [*self.tensors, self.numel, *self.sizes[1:], *flat_strides]


def operand(value: torch.Tensor | Number, dtype: torch.dtype) -> torch.Tensor:
    """A tensor for a Tensor-typed argument that ATen may pass as a plain Python number."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, Number):
        if isinstance(value, bool):
            return torch.tensor(value, dtype=dtype)
        raise TypeError(f"expected a Tensor or a number, got {type(value).__name__}")
    return torch.tensor(value, dtype=dtype)


def compute_dtype(dtype: torch.dtype) -> tl.dtype:
    """The Triton dtype arithmetic runs in: fp32 for the 16-bit floats (ATen's opmath), else the dtype."""
    return TRITON_DTYPES[torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype]


TRITON_DTYPES = {
    torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float64: tl.float64,
    torch.int8: tl.int8, torch.int16: tl.int16, torch.int32: tl.int32, torch.int64: tl.int64,
    torch.uint8: tl.uint8, torch.bool: tl.int1,
}


@triton.jit
def strided_offset(index, s1, s2, s3, t0, t1, t2, t3, RANK: tl.constexpr):
    """Memory offset (int64) of flat `index` in a shape of RANK right-aligned dims with strides t0..t3."""
    if RANK == 1:
        offset = index.to(tl.int64) * t3
    elif RANK == 2:
        offset = (index % s3).to(tl.int64) * t3 + (index // s3).to(tl.int64) * t2
    elif RANK == 3:
        rest = index // s3
        offset = (index % s3).to(tl.int64) * t3 + (rest % s2).to(tl.int64) * t2 + (rest // s2).to(tl.int64) * t1
    else:
        rest = index // s3
        rest2 = rest // s2
        offset = (index % s3).to(tl.int64) * t3 + (rest % s2).to(tl.int64) * t2 + (rest2 % s1).to(tl.int64) * t1 \
            + (rest2 // s1).to(tl.int64) * t0
    return offset
