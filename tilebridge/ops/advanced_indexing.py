"""Lookups by index tensors: embedding (weight[indices]) and its backward, x[indices] (`index.Tensor`) and
x[indices] = values (`index_put`, with or without accumulate).

They run on `indexing`'s line kernel. embedding gathers whole rows (a lane per column, j walks the
indices); its backward adds rows into a zeroed table in index order (padding_idx left out). For x[i]
and index_put, `Advanced` reads the index tensors as ATen does (masks become their nonzero
positions, index tensors broadcast, the result dims placed as NumPy places them) and one small kernel
turns each position's indices into an element offset into x; the line kernel then gathers from, or
puts and accumulates into, those offsets. index_put walks positions in order, so duplicate positions
accumulate (or the last one wins) as in ATen, rounding 16-bit sums every step as ATen does.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.indexing import INDEX_DTYPES, NUMBERS, check_range, lines, plain, result, scatter_target, wrap
from tilebridge.ops.launching import launchable
from tilebridge.ops.registry import ALL, FLOATS, Decline, register

CATEGORY = "advanced_indexing"


@launchable
@triton.jit(do_not_specialize=["P", "K", "step_k", "step_p"], do_not_specialize_on_alignment=["index_ptr"])
def offsets_kernel(out_ptr, index_ptr, table_ptr, P, K, step_k, step_p, BLOCK: tl.constexpr):
    """out[p] = sum over k of index[k, p] * stride[k], a negative index counted from the end of its dim."""
    ps = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = ps < P
    total = tl.zeros([BLOCK], tl.int64)
    for k in range(K):
        size = tl.load(table_ptr + 2 * k)
        stride = tl.load(table_ptr + 2 * k + 1)
        index = tl.load(index_ptr + k * step_k + ps.to(tl.int64) * step_p, mask=inside, other=0).to(tl.int64)
        total += tl.where(index < 0, index + size, index) * stride
    tl.store(out_ptr + ps, total, mask=inside)


# --- embedding ----------------------------------------------------------------------------------------------

def embedding(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    weight, indices = plain(bound["weight"]), plain(bound["indices"], frozenset(INDEX_DTYPES))
    if weight.dim() != 2:
        raise Decline("weight must be 2-D: ATen's error")
    rows, width = weight.shape
    check_range(indices, rows)
    flat = indices.reshape(-1)
    target = result(out, [*indices.shape, width], weight.dtype, weight, indices)
    matrix = as_matrix(target, width)
    lines("gather", matrix, weight, flat, [flat.numel(), width], 0, ([matrix.stride(1)], matrix.stride(0)),
          ([weight.stride(1)], weight.stride(0)), ([0], flat.stride(0)))
    return target


def as_matrix(t: torch.Tensor, width: int) -> torch.Tensor:
    """`t` as (rows, width) without a copy (a kernel writes through it), or Decline."""
    try:
        return t.view(-1, width)
    except RuntimeError:
        raise Decline("out= whose rows do not merge") from None


def embedding_dense_backward(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    """grad_weight[indices[i]] += grad[i], i in order (ATen's order, so sums round alike); padding_idx rows stay 0."""
    grad, indices = plain(bound["grad_output"], FLOATS), plain(bound["indices"], frozenset(INDEX_DTYPES))
    rows, padding_idx = int(bound["num_weights"]), int(bound["padding_idx"])
    if bound["scale_grad_by_freq"] or grad.dim() == 0:
        raise Decline("scale_grad_by_freq")
    width = grad.shape[-1]
    flat = indices.reshape(-1)
    if grad.numel() != flat.numel() * width:
        raise Decline("grad and indices disagree: ATen's error")
    check_range(flat, rows)
    target = result(out, [rows, width], grad.dtype, grad, indices)
    target.zero_()
    source = grad.reshape(flat.numel(), width)
    lines("add", target, source, flat, [flat.numel(), width], 0, ([source.stride(1)], source.stride(0)),
          ([target.stride(1)], target.stride(0)), ([0], flat.stride(0)), skip=padding_idx if padding_idx >= 0 else -1)
    return target


# --- advanced indexing: index.Tensor, index_put -------------------------------------------------------------

class Advanced:
    """x[indices] as ATen reads it: masks become their nonzero positions, index tensors broadcast to one shape
    B; the result is B in place of adjacent indexed dims, else B first, then the other (`rest`) dims.
    `offsets` holds each position's element offset in x."""

    def __init__(self, x: torch.Tensor, indices: list[torch.Tensor | None]):
        if len(indices) > x.dim():
            raise Decline("too many indices: ATen's error")
        full: list[torch.Tensor | None] = []
        tensors = [t for t in indices if t is not None]
        self.unique = len(tensors) == 1 and tensors[0].dtype in (torch.bool, torch.uint8)  # one mask: no position twice
        for t in indices:
            if t is None:
                full.append(None)
            elif plain(t, frozenset({torch.bool, torch.uint8, *INDEX_DTYPES})).dtype in (torch.bool, torch.uint8):
                d = len(full)
                if t.dim() == 0 or list(t.shape) != list(x.shape[d:d + t.dim()]):
                    raise Decline("mask shape: ATen's error or its 0-dim mask rule")
                self.mask_positions = torch.nonzero(t)  # (positions, mask dims), in range by construction
                full.extend(self.mask_positions.unbind(1))
            else:
                full.append(t)
        full += [None] * (x.dim() - len(full))
        self.dims = [d for d, t in enumerate(full) if t is not None]
        if not self.dims:
            raise Decline("no index tensor")
        tensors = [full[d] for d in self.dims]
        try:
            self.batch = list(torch.broadcast_shapes(*(t.shape for t in tensors)))
        except RuntimeError:
            raise Decline("index shapes do not broadcast: ATen's error") from None
        if not self.unique:
            for d, t in zip(self.dims, tensors):
                check_range(t, x.shape[d], negative=True)
        self.rest = [d for d in range(x.dim()) if d not in self.dims]
        self.adjacent = self.dims == list(range(self.dims[0], self.dims[-1] + 1))
        before = self.dims[0] if self.adjacent else 0
        self.shape = [x.shape[d] for d in self.rest[:before]] + self.batch + [x.shape[d] for d in self.rest[before:]]
        self.batch_dims = list(range(before, before + len(self.batch)))
        self.positions = 1
        for size in self.batch:
            self.positions *= size
        self.offsets = torch.empty(self.positions, dtype=torch.int64)
        if self.positions:
            if self.unique:  # the mask's nonzero matrix as it is: (positions, k)
                matrix, (step_k, step_p) = self.mask_positions, self.mask_positions.stride()[::-1]
            else:
                matrix = torch.stack([t.expand(self.batch).reshape(-1).to(torch.int64) for t in tensors])
                step_k, step_p = matrix.stride()
            table = torch.tensor([[x.shape[d], x.stride(d)] for d in self.dims], dtype=torch.int64)
            offsets_kernel[(cdiv(self.positions, 1024),)](self.offsets, matrix, table, self.positions, len(tensors),
                                                                 step_k, step_p, BLOCK=1024)

    def batch_first(self, t: torch.Tensor, view: bool = False) -> torch.Tensor:
        """A result-shaped tensor as (positions, *rest), B's dims merged: a view (or Decline), else maybe a copy."""
        order = self.batch_dims + [d for d in range(t.dim()) if d not in self.batch_dims]
        shape = [self.positions, *[t.shape[d] for d in order[len(self.batch_dims):]]]
        try:
            return t.permute(order).view(shape) if view else t.permute(order).reshape(shape)
        except RuntimeError:
            raise Decline("a result whose indexed dims do not merge") from None

    def run(self, mode: str, out: torch.Tensor, source: torch.Tensor, moved: torch.Tensor, x: torch.Tensor) -> None:
        """Gather x into `moved` (mode gather) or put `moved` into x (set, add); `moved` is (positions, *rest)."""
        rest_strides = [x.stride(d) for d in self.rest]
        lines(mode, out, source, self.offsets, [self.positions, *moved.shape[1:]], 0, (list(moved.stride()[1:]), moved.stride(0)),
              (rest_strides, 1), ([0] * len(self.rest), 1), unique=self.unique)


def index(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    x = plain(bound["self"])
    advanced = Advanced(x, list(bound["indices"]))
    target = result(out, advanced.shape, x.dtype, x)
    moved = advanced.batch_first(target, view=True)
    advanced.run("gather", moved, x, moved, x)
    return target


def index_put(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    """self[indices] = values (or += with accumulate), functional, out= or in place; positions in order."""
    x, values = plain(bound["self"]), plain(bound["values"])
    accumulate = bool(bound.get("accumulate", False))
    if values.dtype != x.dtype or (accumulate and x.dtype not in NUMBERS):
        raise Decline("dtypes: ATen's error, or a bool sum")
    target = scatter_target(x, out, inplace, values, *(t for t in bound["indices"] if t is not None))
    advanced = Advanced(target, list(bound["indices"]))  # offsets in the target's strides
    try:
        moved = advanced.batch_first(values.expand(advanced.shape))
    except RuntimeError:
        raise Decline("values do not broadcast: ATen's error") from None
    advanced.run("add" if accumulate else "set", target, moved, moved, target)
    return target


for _overload in ("embedding", "embedding.out"):
    register(_overload, wrap(_overload, embedding), ALL, CATEGORY)
for _overload in ("embedding_dense_backward", "embedding_dense_backward.out"):
    register(_overload, wrap(_overload, embedding_dense_backward), FLOATS, CATEGORY)
for _overload in ("index.Tensor", "index.Tensor_out"):
    register(_overload, wrap(_overload, index), ALL, CATEGORY)
for _overload in ("index_put", "index_put_", "index_put.out", "_index_put_impl_"):
    register(_overload, wrap(_overload, index_put), ALL, CATEGORY)
