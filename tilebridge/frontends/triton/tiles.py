"""Tiles during lowering: a TTIR value is a `TVal`, a generator of its element at an index.

Shared by the lowering's parts (`lower`, `lower_compute`, `lower_control`).
"""
from __future__ import annotations

import struct

from tilebridge.frontends.triton.ttir import TType
from tilebridge.ir import nodes as n
from tilebridge.ir.types import BITS, is_float, is_pointer

I32 = "i32"
EXPENSIVE_COST = 6  # a multi-use value costlier than this is computed once into a buffer
VECTOR_LANES = 16  # fp32 elements in one AVX-512 register
REDUCE_LANES = 64  # partial results per long row reduction: four independent vector chains


class LoweringError(NotImplementedError):
    """A construct tilebridge cannot compile; the message names it and the kernel source line."""


class TVal:
    """A TTIR value during lowering: its type and a generator of its element at an index."""
    __slots__ = ("type", "gen", "cost", "loads", "reads", "materialized", "buffer", "transpose_of", "fill", "roots")

    def __init__(self, type_: TType, gen, cost: int = 0, loads: frozenset = frozenset(),
                 reads: frozenset = frozenset(), materialized: bool = False, roots: frozenset = frozenset()) -> None:
        self.type, self.gen, self.cost, self.loads, self.reads = type_, gen, cost, loads, reads
        self.materialized = materialized
        # Of a pointer: the kernel's pointer arguments it may point into (ANYWHERE, or none: unknown);
        # of a load: those it reads through.
        self.roots = roots
        self.buffer: n.Buffer | None = None  # the whole-tile buffer holding the value, once there is one
        self.transpose_of: tuple | None = None  # (source, order) when the value is a permutation of another
        self.fill: n.Buffer | None = None  # the buffer its consumer (a reduction) fills as it reads the value

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.elem

    def scalar(self) -> n.Expr:
        return self.gen(())


def c0(value: int = 0) -> n.Const:
    return n.Const(value, I32)


def linear_index(idx: tuple, shape: tuple) -> n.Expr:
    expr = None
    stride = 1
    for k in reversed(range(len(shape))):
        if shape[k] != 1:
            term = idx[k] if stride == 1 else n.Binary("mul", idx[k], c0(stride), I32)
            expr = term if expr is None else n.Binary("add", term, expr, I32)
        stride *= shape[k]
    return expr if expr is not None else c0()


ANYWHERE = frozenset({"*"})  # the roots of a pointer of unknown origin (loaded, cast from an integer, carried)


def derived(type_: TType, gen, *sources: TVal, cost: int = 1) -> TVal:
    roots = frozenset().union(*(s.roots or ANYWHERE for s in sources if is_pointer(s.dtype)))
    return TVal(type_, gen, cost + sum(s.cost for s in sources),
                frozenset().union(*(s.loads for s in sources)), frozenset().union(*(s.reads for s in sources)),
                roots=roots)


def parse_constant(text: str, elem: str):
    text = text.strip()
    if text.startswith("dense<"):
        text = text[len("dense<"):-1].strip()
        if text.startswith("["):
            raise ValueError("non-splat dense constants")
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("0x") and is_float(elem):
        bits = int(text, 16)
        fmt = {"f32": ("<I", "<f"), "f64": ("<Q", "<d"), "f16": ("<H", "<e")}.get(elem)
        if fmt is None:  # bf16 / fp8 bit patterns: widen through f32
            if elem == "bf16":
                return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
            raise ValueError(f"hex constant of type {elem}")
        return struct.unpack(fmt[1], struct.pack(fmt[0], bits))[0]
    if is_float(elem):
        return float(text)
    value = int(text, 0)
    bits = BITS.get(elem, 64)
    if elem == "i1":
        return bool(value & 1)
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def numel(shape: tuple) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def buffer_from(buffer: n.Buffer, offset: int) -> n.Buffer:
    """The part of `buffer` from element `offset` on, as a call argument (one matrix of a batched dot)."""
    return buffer if offset == 0 else n.Buffer(f"({buffer.name} + {offset})", buffer.dtype, buffer.size - offset)
