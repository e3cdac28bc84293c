"""Indexing along one dim: index_select, gather, scatter (src, value, reduce), scatter_add, scatter_reduce
and index_add; and the kernel they share with the lookups of `advanced_indexing` (embedding, x[i],
index_put).

Every one of them is the same loop over *lines*: a lane is one position in the dims that are not
indexed, and j walks the indexed dim. GATHER reads `source[lane, index[lane, j]]` into `out[lane, j]`;
the scatter modes write `out[lane, index[lane, j]]` from `source[lane, j]` (set, or a reduction: add,
multiply, amax, amin). A broadcast index (index_select, embedding, index_add) is an index of stride 0
over the lanes; the index tensors and masks of x[i] and index_put become one index of element offsets
(dim stride 1).

Scatter modes walk j serially within a lane (one j per step), as ATen's CPU kernels do: different
lanes never write the same element, so there are no races and no atomics, and duplicate indices
accumulate (or the last one wins) in ATen's order. 16-bit floats round as ATen does: scatter and
index_add sum in a float32 copy rounded once, embedding backward and index_put round every step. Data
movement (gather, set) moves raw bits: every dtype of one element size shares one compiled kernel.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import bind, out_argument
from tilebridge.ops.registry import ALL, FLOATS, INTEGERS, Decline, register, served_device
from tilebridge.ops.strided import MAX_ELEMENTS, MAX_RANK, collapse, compute_dtype, has_internal_overlap, strided_offset

CATEGORY = "indexing"
NUMBERS = FLOATS | INTEGERS
BITS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
INDEX_DTYPES = (torch.int64, torch.int32)
REDUCTIONS = {"add": 0, "multiply": 1, "amax": 2, "amin": 3}  # lines_kernel's runtime `op`: one compile serves all
_INTS = ["L", "N", "s1", "s2", "s3", "f0", "f1", "f2", "f3", "g0", "g1", "g2", "g3", "h0", "h1", "h2", "h3",
         "fixed_step", "indexed_step", "index_step", "skip", "alpha", "op"]


@launchable
@triton.jit(do_not_specialize=_INTS, do_not_specialize_on_alignment=["out_ptr", "source_ptr", "index_ptr"])
def lines_kernel(out_ptr, source_ptr, index_ptr, L, N, s1, s2, s3, f0, f1, f2, f3, g0, g1, g2, g3, h0, h1, h2, h3,
                 fixed_step, indexed_step, index_step, skip, alpha, op, MODE: tl.constexpr, COMPUTE: tl.constexpr,
                 UNIT: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_J: tl.constexpr, SHARED_INDEX: tl.constexpr = False):
    """The fixed tensor is addressed by (lane, j) (strides f, fixed_step), the indexed one by (lane, index)
    (strides g, indexed_step), the index by (lane, j) (strides h, index_step); j with index == skip is left out.
    SHARED_INDEX: every lane reads the same index at j (h all zero: index_select, embedding), loaded once
    per j, so a row of lanes is one run of addresses the C compiler vectorizes instead of a gather."""
    lanes = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    lane_in = lanes < L
    if UNIT:  # lanes are one run of stride 1 in both tensors: contiguous rows the C compiler vectorizes
        fixed_lane = lanes.to(tl.int64)[None, :]
        indexed_lane = lanes.to(tl.int64)[None, :]
    else:
        fixed_lane = strided_offset(lanes, s1, s2, s3, f0, f1, f2, f3, 4)[None, :]
        indexed_lane = strided_offset(lanes, s1, s2, s3, g0, g1, g2, g3, 4)[None, :]
    index_lane = strided_offset(lanes, s1, s2, s3, h0, h1, h2, h3, 4)[None, :]
    for start in range(tl.program_id(1) * BLOCK_J, N, BLOCK_J * tl.num_programs(1)):
        js = (start + tl.arange(0, BLOCK_J)).to(tl.int64)[:, None]  # tiles are (j, lane): lanes innermost
        inside = lane_in[None, :] & (js < N)
        if SHARED_INDEX:
            index = tl.load(index_ptr + js * index_step, mask=js < N, other=0).to(tl.int64)
        else:
            index = tl.load(index_ptr + index_lane + js * index_step, mask=inside, other=0).to(tl.int64)
        inside = inside & (index != skip)
        fixed = fixed_lane + js * fixed_step
        indexed = indexed_lane + index * indexed_step
        if MODE == "gather":
            tl.store(out_ptr + fixed, tl.load(source_ptr + indexed, mask=inside), mask=inside)
        elif MODE == "set":
            tl.store(out_ptr + indexed, tl.load(source_ptr + fixed, mask=inside), mask=inside)
        else:
            value = tl.load(source_ptr + fixed, mask=inside).to(COMPUTE)
            old = tl.load(out_ptr + indexed, mask=inside).to(COMPUTE)
            new = tl.where(op == 0, old + value * alpha, old * value)
            new = tl.where(op == 2, tl.maximum(old, value, propagate_nan=tl.PropagateNan.ALL), new)
            new = tl.where(op == 3, tl.minimum(old, value, propagate_nan=tl.PropagateNan.ALL), new)
            tl.store(out_ptr + indexed, new.to(out_ptr.dtype.element_ty), mask=inside)


# --- host side ------------------------------------------------------------------------------------------------

def bits(t: torch.Tensor) -> torch.Tensor:
    """The same memory as a same-width integer tensor: data movement then compiles once per element size."""
    return t.view(BITS[t.element_size()]) if t.dtype != BITS[t.element_size()] else t


def strides_without(t: torch.Tensor, dim: int) -> tuple[list[int], int]:
    """(strides of every dim but `dim`, stride of `dim`)."""
    strides = list(t.stride())
    return strides[:dim] + strides[dim + 1:], strides[dim]


def lines(mode: str, out: torch.Tensor, source: torch.Tensor, index: torch.Tensor, shape: list[int], dim: int,
          fixed: tuple[list[int], int], indexed: tuple[list[int], int], index_strides: tuple[list[int], int],
          skip: int = -1, alpha: float = 1, unique: bool = False) -> None:
    """Run `lines_kernel` over `shape` (the index's), walking `dim`; each stride pair is (lane strides, dim stride).

    Scatter modes walk j in order unless the index holds no repeats (`unique`): then j runs in parallel too."""
    lane_shape = shape[:dim] + shape[dim + 1:]
    N = shape[dim]
    L = 1
    for size in lane_shape:
        L *= size
    if L == 0 or N == 0:
        return
    if L * N > MAX_ELEMENTS or out.numel() > MAX_ELEMENTS or source.numel() > MAX_ELEMENTS:
        raise Decline("more elements than int32 lane indexing covers")
    sizes, (f, g, h) = collapse(lane_shape, [fixed[0], indexed[0], index_strides[0]])
    if len(sizes) > MAX_RANK:
        raise Decline("more than 4 non-mergeable lane dims")
    unit = mode == "gather" and len(sizes) == 1 and f[0] == 1 and g[0] == 1  # the reads that pay: embedding, x[i]
    pad = MAX_RANK - len(sizes)
    sizes, f, g, h = [1] * pad + sizes, [0] * pad + f, [0] * pad + g, [0] * pad + h
    moving = mode in ("gather", "set")
    if moving:
        out, source = bits(out), bits(source)
    compute = compute_dtype(out.dtype)
    parallel = mode == "gather" or unique
    if parallel:
        block_l, block_j = (128, 8) if L >= 16 else (1, 1024)
    else:
        block_l, block_j = 128, 1  # one lane or many: one compiled shape
    grid = (cdiv(L, block_l), min(cdiv(N, block_j), 65535) if parallel else 1)
    alpha = float(alpha) if out.dtype.is_floating_point else int(alpha)
    kind, op = (mode, 0) if moving else ("reduce", REDUCTIONS[mode])
    lines_kernel[grid](out, source, index, L, N, *sizes[1:], *f, *g, *h, fixed[1], indexed[1], index_strides[1], skip,
                       alpha, op, MODE=kind, COMPUTE=compute, UNIT=unit, BLOCK_L=block_l, BLOCK_J=block_j,
                       SHARED_INDEX=not any(h))


def check_range(index: torch.Tensor, size: int, negative: bool = False) -> None:
    """Decline indices outside [0, size) ([-size, size) with `negative`): ATen raises its own IndexError."""
    if index.numel() == 0:
        return
    low, high = torch.aminmax(index)
    if int(low) < (-size if negative else 0) or int(high) >= size:
        raise Decline("index out of range: ATen's error")


def plain(t: Any, dtypes: frozenset = ALL) -> torch.Tensor:
    """Decline what is not a strided tensor of a claimed dtype on the device the library serves."""
    if (not isinstance(t, torch.Tensor) or t.layout != torch.strided or t.device.type != served_device()
            or t.dtype not in dtypes):
        raise Decline("not a strided tensor of a claimed dtype on the served device")
    return t


def result(given: torch.Tensor | None, shape: list[int], dtype: torch.dtype, *inputs: torch.Tensor) -> torch.Tensor:
    """A new tensor, or the caller's `out=` when it has the shape and dtype and shares no memory with an input."""
    if given is None:
        return torch.empty(shape, dtype=dtype)
    if list(given.shape) != list(shape) or given.dtype != dtype or has_internal_overlap(given):
        raise Decline("out= needs a resize or a cast, or overlaps itself: ATen's")
    if any(_overlaps(given, t) for t in inputs):
        raise Decline("out= shares memory with an input")
    return given


def _overlaps(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.numel() == 0 or b.numel() == 0 or a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    span = [(t.storage_offset() * t.element_size(),
             (t.storage_offset() + sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) + 1) * t.element_size())
            for t in (a, b)]
    return span[0][0] < span[1][1] and span[1][0] < span[0][1]


def wrap(overload: str, body: Any) -> Any:
    """A wrapper binding the overload's schema: `body(bound, out, inplace)`; out is the `out=` tensor if any."""
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    out_name = out_argument(schema)
    inplace = out_name is None and packet.endswith("_") and not packet.endswith("__")

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = bind(schema, args, kwargs)
        return body(bound, bound.get(out_name) if out_name else None, inplace)

    return wrapper


# --- index_select, gather, scatter, index_add --------------------------------------------------------------

def at_least_1d(t: torch.Tensor) -> torch.Tensor:
    """0-dim tensors as 1-element views: ATen's gather/scatter treat them as 1-d."""
    return t.view(1) if t.dim() == 0 else t


def normalized(dim: int, rank: int) -> int:
    if not -max(rank, 1) <= dim < max(rank, 1):
        raise Decline("dim out of range: ATen's error")
    return dim % max(rank, 1)


def index_select(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    x, index = plain(bound["self"]), plain(bound["index"], frozenset(INDEX_DTYPES))
    dim = normalized(bound["dim"], x.dim())
    if index.dim() > 1:
        raise Decline("index must be 1-d: ATen's error")
    shape = list(x.shape)
    if x.dim():
        shape[dim] = index.numel()
    elif index.numel() != 1:
        raise Decline("a 0-dim self takes one index")
    check_range(index, x.shape[dim] if x.dim() else 1)
    target = result(out, shape, x.dtype, x, index)
    source, written, flat = at_least_1d(x), at_least_1d(target), at_least_1d(index)
    lines("gather", written, source, flat, list(written.shape), dim, strides_without(written, dim),
          strides_without(source, dim), ([0] * (source.dim() - 1), flat.stride(0)))
    return target


def _shapes_fit(index: torch.Tensor, x: torch.Tensor, dim: int, src: torch.Tensor | None = None) -> None:
    """ATen's gather/scatter shape rule: same rank; index no larger than self (but in dim) and than src (in every dim)."""
    if index.dim() != x.dim() or (src is not None and src.dim() != x.dim()):
        raise Decline("ranks differ: ATen's error")
    for d, size in enumerate(index.shape):
        if (d != dim and size > x.shape[d]) or (src is not None and size > src.shape[d]):
            raise Decline("index larger than self or src: ATen's error")


def gather(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    x, index = plain(bound["self"]), plain(bound["index"], frozenset(INDEX_DTYPES))
    dim = normalized(bound["dim"], x.dim())
    source, flat = at_least_1d(x), at_least_1d(index)
    _shapes_fit(flat, source, dim)
    check_range(index, source.shape[dim])
    target = result(out, list(index.shape), x.dtype, x, index)
    written = at_least_1d(target)
    lines("gather", written, source, flat, list(flat.shape), dim, strides_without(written, dim),
          strides_without(source, dim), strides_without(flat, dim))
    return target


def scatter_target(x: torch.Tensor, out: torch.Tensor | None, inplace: bool, *inputs: torch.Tensor) -> torch.Tensor:
    """Where a scatter writes: self (in place), the caller's out= holding a copy of self, or a new copy."""
    if inplace:
        if has_internal_overlap(x) or any(_overlaps(x, t) for t in inputs):
            raise Decline("in-place target overlaps: ATen's error")
        return x
    if out is None:
        return x.clone()
    target = result(out, list(x.shape), x.dtype, *inputs)
    if not (target.data_ptr() == x.data_ptr() and target.stride() == x.stride()):
        if _overlaps(target, x):
            raise Decline("out= partially overlaps self")
        target.copy_(x)
    return target


def scalar_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    """A Scalar argument as a 0-dim tensor of `dtype`, where the conversion is exact or a plain rounding."""
    value = value.item() if isinstance(value, torch.Tensor) else value
    finite = not isinstance(value, float) or (value == value and abs(value) != float("inf"))
    if isinstance(value, complex) or (not finite and not dtype.is_floating_point and dtype != torch.bool) \
            or (finite and dtype.is_floating_point and abs(value) > torch.finfo(dtype).max):
        raise Decline("a Scalar ATen converts (or refuses) itself")
    try:
        return torch.tensor(value, dtype=dtype)
    except (RuntimeError, OverflowError):
        raise Decline("a Scalar that overflows the dtype: ATen's error") from None


@contextmanager
def widened(target: torch.Tensor, mode: str) -> Iterator[torch.Tensor]:
    """Where a 16-bit float target accumulates: a float32 copy, rounded back once at the end (what ATen's
    scatter_add, scatter reduce and index_add do on CPU); the target itself for every other case."""
    if mode == "set" or target.dtype not in (torch.float16, torch.bfloat16):
        yield target
        return
    work = target.float()
    yield work
    target.copy_(work)


SCATTER_REDUCE = {None: "set", "add": "add", "multiply": "multiply"}  # scatter's reduce=
REDUCE_TWO = {"sum": "add", "prod": "multiply", "amax": "amax", "amin": "amin"}  # scatter_reduce's; mean stays ATen's


def _identity(mode: str, dtype: torch.dtype) -> float:
    """What a position starts from when scatter_reduce leaves self out (include_self=False)."""
    info = torch.finfo(dtype) if dtype.is_floating_point else torch.iinfo(dtype)
    low, high = (-float("inf"), float("inf")) if dtype.is_floating_point else (info.min, info.max)
    return {"add": 0, "multiply": 1, "amax": low, "amin": high}[mode]


def scatter(bound: dict, out: torch.Tensor | None, inplace: bool, mode: str | None = None) -> torch.Tensor:
    """scatter (src or value, reduce add/multiply), scatter_add and scatter_reduce, functional, out= and in place."""
    x, index = plain(bound["self"]), plain(bound["index"], frozenset(INDEX_DTYPES))
    two = isinstance(bound.get("include_self"), bool)
    mode = mode or (REDUCE_TWO if two else SCATTER_REDUCE).get(bound.get("reduce"), "")
    if not mode or (mode != "set" and x.dtype not in NUMBERS):
        raise Decline("reduce or dtype")
    dim = normalized(bound["dim"], x.dim())
    src = bound.get("src")
    if src is None:
        src = scalar_tensor(bound["value"], x.dtype).expand(index.shape)
    elif plain(src).dtype != x.dtype:
        raise Decline("src dtype differs: ATen's error")
    flat, values = at_least_1d(index), at_least_1d(src)
    _shapes_fit(flat, at_least_1d(x), dim, values)
    check_range(index, at_least_1d(x).shape[dim])
    target = scatter_target(x, out, inplace, index, src)
    with widened(target, mode) as written:
        written = at_least_1d(written)
        if two and not bound["include_self"]:
            start = scalar_tensor(_identity(mode, written.dtype), written.dtype).expand(flat.shape)
            lines("set", written, start, flat, list(flat.shape), dim, strides_without(start, dim),
                  strides_without(written, dim), strides_without(flat, dim))
        lines(mode, written, values, flat, list(flat.shape), dim, strides_without(values, dim),
              strides_without(written, dim), strides_without(flat, dim))
    return target


def scatter_add(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    return scatter(bound, out, inplace, "add")


def index_add(bound: dict, out: torch.Tensor | None, inplace: bool) -> torch.Tensor:
    """self[..., index[i], ...] += alpha * source[..., i, ...], i in order."""
    x, index, source = plain(bound["self"], NUMBERS), plain(bound["index"], frozenset(INDEX_DTYPES)), plain(bound["source"])
    alpha = bound.get("alpha", 1)
    alpha = alpha.item() if isinstance(alpha, torch.Tensor) else alpha
    if source.dtype != x.dtype or index.dim() > 1 or (not x.dtype.is_floating_point and alpha != int(alpha)):
        raise Decline("dtypes, index rank or alpha: ATen's")
    dim = normalized(bound["dim"], x.dim())
    written_shape, values = list(at_least_1d(x).shape), at_least_1d(source)
    if values.dim() != len(written_shape) or values.shape[dim] != index.numel() \
            or any(values.shape[d] != s for d, s in enumerate(written_shape) if d != dim):
        raise Decline("shapes: ATen's error")
    check_range(index, written_shape[dim])
    target = scatter_target(x, out, inplace, index, source)
    flat = at_least_1d(index)
    with widened(target, "add") as written:
        lines("add", at_least_1d(written), values, flat, list(values.shape), dim, strides_without(values, dim),
              strides_without(at_least_1d(written), dim), ([0] * (values.dim() - 1), flat.stride(0)), alpha=alpha)
    return target


for _overload in ("index_select", "index_select.out"):
    register(_overload, wrap(_overload, index_select), ALL, CATEGORY)
for _overload in ("gather", "gather.out"):
    register(_overload, wrap(_overload, gather), ALL, CATEGORY)
for _overload in ("scatter.src scatter.value scatter.src_out scatter.value_out scatter_.src scatter_.value").split():
    register(_overload, wrap(_overload, scatter), ALL, CATEGORY)
for _overload in ("scatter.reduce scatter.value_reduce scatter.reduce_out scatter.value_reduce_out scatter_.reduce "
                  "scatter_.value_reduce").split():
    register(_overload, wrap(_overload, scatter), NUMBERS, CATEGORY)
for _overload in ("scatter_add", "scatter_add.out", "scatter_add_"):
    register(_overload, wrap(_overload, scatter_add), NUMBERS, CATEGORY)
for _overload in ("index_add", "index_add.out", "index_add_"):
    register(_overload, wrap(_overload, index_add), NUMBERS, CATEGORY)
for _overload in ("scatter_reduce.two", "scatter_reduce.two_out", "scatter_reduce_.two"):
    register(_overload, wrap(_overload, scatter), NUMBERS, CATEGORY)
