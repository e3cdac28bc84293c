"""The three generic pointwise kernels (one, two and three tensor inputs) and the wrapper factory.

An operator is a small `@triton.jit` math function handed to a generic kernel as a `tl.constexpr`:
`FN(x, p0, p1, p2)`, `FN(a, b, p0, p1, p2)` or `FN(a, b, c, p0, p1)`, where the p's are the op's
Scalar arguments (alpha, negative_slope, min/max, ...). Inputs are loaded in their own dtype and
converted to the compute dtype (fp32 for the 16-bit floats, as ATen's opmath), the result is
converted to the output's dtype at the store. The host wrapper does type promotion, Python scalars,
broadcasting, `out=` and in-place variants, and declines what ATen must handle (float64, a resize of
`out`, overlapping memory).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from numbers import Number
from typing import Any

import torch
import triton
import triton.language as tl
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND as Promotion
from torch._prims_common import elementwise_dtypes

from tilebridge.ops.launching import launchable
from tilebridge.ops.registry import Decline, register, served_device
from tilebridge.ops.strided import BLOCK, TRITON_DTYPES, Layout, compute_dtype, has_internal_overlap, operand, strided_offset

_INTS = ["n", "s1", "s2", "s3"] + [f"t{o}{d}" for o in range(4) for d in range(4)] + ["p0", "p1", "p2"]
_POINTERS = ["out_ptr", "a_ptr", "b_ptr", "c_ptr"]


def _jit(fn):
    """Specialize on dtypes and constexprs only: sizes, strides and scalars never multiply compiles."""
    return launchable(triton.jit(fn, do_not_specialize=[n for n in _INTS if n in fn.__code__.co_varnames],
                                 do_not_specialize_on_alignment=[n for n in _POINTERS if n in fn.__code__.co_varnames]))


@triton.jit
def _load(ptr, index, inside, s1, s2, s3, t0, t1, t2, t3, RANK: tl.constexpr, KIND: tl.constexpr):
    """An operand's elements at flat `index`: KIND "c" contiguous, "s" one element every index reads (a
    Python scalar, a broadcast 0-dim tensor: loaded once, broadcast by the arithmetic), "g" strided."""
    if KIND == "s":
        value = tl.load(ptr)
    elif KIND == "c":
        value = tl.load(ptr + index, mask=inside)
    else:
        value = tl.load(ptr + strided_offset(index, s1, s2, s3, t0, t1, t2, t3, RANK), mask=inside)
    return value


@triton.jit
def _store(ptr, index, inside, value, s1, s2, s3, t0, t1, t2, t3, RANK: tl.constexpr, KIND: tl.constexpr):
    if KIND == "c":
        tl.store(ptr + index, value.to(ptr.dtype.element_ty), mask=inside)
    else:
        tl.store(ptr + strided_offset(index, s1, s2, s3, t0, t1, t2, t3, RANK), value.to(ptr.dtype.element_ty), mask=inside)


@_jit
def unary_kernel(out_ptr, a_ptr, n, s1, s2, s3, t00, t01, t02, t03, t10, t11, t12, t13, p0, p1, p2,
                 FN: tl.constexpr, COMPUTE: tl.constexpr, RANK: tl.constexpr, KINDS: tl.constexpr,
                 BLOCK: tl.constexpr):
    """KINDS: a letter per tensor, out first, as `_load` reads them."""
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = index < n
    a = _load(a_ptr, index, inside, s1, s2, s3, t10, t11, t12, t13, RANK, tl.constexpr(KINDS[1])).to(COMPUTE)
    _store(out_ptr, index, inside, FN(a, p0, p1, p2), s1, s2, s3, t00, t01, t02, t03, RANK,
           tl.constexpr(KINDS[0]))


@_jit
def binary_kernel(out_ptr, a_ptr, b_ptr, n, s1, s2, s3, t00, t01, t02, t03, t10, t11, t12, t13, t20, t21, t22, t23,
                  p0, p1, p2, FN: tl.constexpr, COMPUTE: tl.constexpr, RANK: tl.constexpr, KINDS: tl.constexpr,
                  BLOCK: tl.constexpr):
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = index < n
    a = _load(a_ptr, index, inside, s1, s2, s3, t10, t11, t12, t13, RANK, tl.constexpr(KINDS[1])).to(COMPUTE)
    b = _load(b_ptr, index, inside, s1, s2, s3, t20, t21, t22, t23, RANK, tl.constexpr(KINDS[2])).to(COMPUTE)
    _store(out_ptr, index, inside, FN(a, b, p0, p1, p2), s1, s2, s3, t00, t01, t02, t03,
           RANK, tl.constexpr(KINDS[0]))


@_jit
def ternary_kernel(out_ptr, a_ptr, b_ptr, c_ptr, n, s1, s2, s3, t00, t01, t02, t03, t10, t11, t12, t13,
                   t20, t21, t22, t23, t30, t31, t32, t33, p0, p1, FN: tl.constexpr, COMPUTE: tl.constexpr,
                   RANK: tl.constexpr, KINDS: tl.constexpr, BLOCK: tl.constexpr):
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = index < n
    a = _load(a_ptr, index, inside, s1, s2, s3, t10, t11, t12, t13, RANK, tl.constexpr(KINDS[1])).to(COMPUTE)
    b = _load(b_ptr, index, inside, s1, s2, s3, t20, t21, t22, t23, RANK, tl.constexpr(KINDS[2])).to(COMPUTE)
    c = _load(c_ptr, index, inside, s1, s2, s3, t30, t31, t32, t33, RANK, tl.constexpr(KINDS[3])).to(COMPUTE)
    _store(out_ptr, index, inside, FN(a, b, c, p0, p1), s1, s2, s3, t00, t01, t02, t03,
           RANK, tl.constexpr(KINDS[0]))


KERNELS = {1: (unary_kernel, 3), 2: (binary_kernel, 3), 3: (ternary_kernel, 2)}


def launch(fn: Any, out: torch.Tensor, inputs: list[torch.Tensor], params: Iterable[Any], compute: torch.dtype,
           layout: Layout | None = None) -> None:
    """Run `fn` over `inputs` (broadcastable to `out`) into `out`, in the compute dtype `compute`."""
    if out.numel() == 0:
        return
    kernel, n_params = KERNELS[len(inputs)]
    layout = layout or Layout(out, inputs)
    as_int = not compute.is_floating_point
    if as_int and any(isinstance(p, float) and not p.is_integer() for p in params):
        raise Decline("fractional Scalar for an integer computation (ATen raises or converts)")
    values = [int(p) if as_int else float(p) for p in params]
    values += [0] * (n_params - len(values))
    kernel[layout.grid()](*layout.args(), *values, FN=fn, COMPUTE=compute_dtype(compute), RANK=layout.rank,
                          KINDS=layout.kinds, BLOCK=BLOCK)


# --- the wrapper factory ---------------------------------------------------------------------------------

OPMATH = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


def promote(values: list[Any], kind: Promotion) -> tuple[torch.dtype, torch.dtype, torch.dtype]:
    """(common, compute, result) dtypes of an elementwise op, by ATen's rules for this promotion kind."""
    common = elementwise_dtypes(*values, type_promotion_kind=Promotion.NO_OPMATH)[1]
    result = common
    if kind == Promotion.INT_TO_FLOAT and not common.is_floating_point:
        result = torch.get_default_dtype()
    elif kind == Promotion.ALWAYS_BOOL:
        result = torch.bool
    basis = result if kind == Promotion.INT_TO_FLOAT else common
    return common, OPMATH.get(basis, basis), result


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and a.numel() > 0 and b.numel() > 0


def _check_output(out: torch.Tensor, shape: torch.Size, inputs: list[torch.Tensor], result: torch.dtype) -> None:
    """Decline what ATen must do itself for an `out=`/in-place target: resize, unsafe cast, overlap."""
    if out.shape != shape or not torch.can_cast(result, out.dtype) or has_internal_overlap(out):
        raise Decline("out needs a resize, an unsafe cast, or overlaps itself")
    for t in inputs:
        if _same_memory(out, t) and not (t.shape == out.shape and t.stride() == out.stride()
                                         and t.storage_offset() == out.storage_offset()):
            raise Decline("out partially overlaps an input")


def _empty_result(shape: torch.Size, dtype: torch.dtype, inputs: list[torch.Tensor]) -> torch.Tensor:
    """A result laid out like the first full-shape dense input (as ATen keeps channels-last etc.), else contiguous."""
    for t in inputs:
        if t.shape == shape and t.dim() > 1 and not t.is_contiguous() and _dense(t):
            return torch.empty_like(t, dtype=dtype)
    return torch.empty(shape, dtype=dtype)


def _dense(t: torch.Tensor) -> bool:
    order = sorted(range(t.dim()), key=lambda d: t.stride(d))
    expected = 1
    for d in order:
        if t.shape[d] != 1 and t.stride(d) != expected:
            return False
        expected *= t.shape[d]
    return True


@dataclass(frozen=True)
class Pointwise:
    """One elementwise operator: its math, its tensor and Scalar arguments, its dtypes and promotion.

    `tensors` name the schema arguments that are (or may arrive as numbers for) tensors, `params` the
    Scalar arguments passed to the math as p0, p1, ...; `select` picks the math from the bound
    arguments when a string argument changes it (gelu's `approximate`), `prepare` rewrites params.
    `promote_over` names the arguments type promotion looks at (default: the tensors; where's
    condition is not one of them, clamp's bounds are), `check` declines calls the op cannot serve.
    """

    fn: Any
    dtypes: frozenset
    tensors: tuple[str, ...] = ("self",)
    params: tuple[str, ...] = ()
    kind: Promotion = Promotion.DEFAULT
    select: Callable[[dict], Any] | None = None
    prepare: Callable[[dict, torch.dtype], list] | None = None
    promote_over: tuple[str, ...] | None = None
    check: Callable[[dict], None] | None = None

    def __call__(self, bound: dict, out: torch.Tensor | None = None, inplace: bool = False) -> torch.Tensor:
        values = [bound[name] for name in self.tensors]
        if self.check is None and self.promote_over is None:
            quick = self.contiguous_call(bound, values, out, inplace)
            if quick is not None:
                return quick
        if not any(isinstance(v, torch.Tensor) for v in values):
            raise Decline("no tensor argument")
        if self.check:
            self.check(bound)
        promoted = [bound[name] for name in self.promote_over] if self.promote_over else values
        common, compute, result = promote([v for v in promoted if v is not None], self.kind)
        if common not in self.dtypes or any(isinstance(v, torch.Tensor) and v.dtype not in TRITON_DTYPES for v in values):
            raise Decline(f"dtype {common}")
        device = served_device()
        if any(isinstance(v, torch.Tensor) and (v.device.type != device or v.layout != torch.strided or v.is_complex())
               for v in values):
            raise Decline("not a strided tensor on the device the library serves")
        inputs = [operand(v, compute) for v in values]
        shape = torch.broadcast_shapes(*(t.shape for t in inputs))
        fn, params = self.math(bound, compute)
        if inplace:
            out = inputs[0]
        if out is not None:
            _check_output(out, shape, inputs, result)
        else:
            out = _empty_result(shape, result, inputs)
        launch(fn, out, inputs, params, compute)
        return out

    def contiguous_call(self, bound: dict, values: list, out: torch.Tensor | None, inplace: bool) -> torch.Tensor | None:
        """The common call, served without the general path's promotion, broadcasting and layout work
        (half of a small call's time): contiguous tensors of one shape and dtype on the served device,
        beside Python numbers that do not change the dtype. None for any other call."""
        first = values[0]
        if type(first) is not torch.Tensor or not first.is_contiguous() or first.device.type != served_device():
            return None
        dtype, shape = first.dtype, first.shape
        for v in values[1:]:
            if type(v) is torch.Tensor:
                if v.dtype != dtype or v.shape != shape or not v.is_contiguous() or v.device != first.device:
                    return None
            elif type(v) not in _KEEPS.get(dtype, ()):
                return None
        promoted = _PROMOTED.get((dtype, self.kind))
        if promoted is None:
            promoted = _PROMOTED[(dtype, self.kind)] = promote([first], self.kind)
        common, compute, result = promoted
        if common not in self.dtypes or dtype not in TRITON_DTYPES or first.layout != torch.strided:
            return None
        inputs = [v if type(v) is torch.Tensor else torch.tensor(v, dtype=compute) for v in values]
        if inplace or out is not None:
            out = first if inplace else out
            if out.dtype != result or not out.is_contiguous() or out.shape != shape:
                return None
            _check_output(out, shape, inputs, result)
        else:
            out = torch.empty(shape, dtype=result)
        fn, params = self.math(bound, compute)
        launch(fn, out, inputs, params, compute, Layout.contiguous(out, inputs))
        return out

    def math(self, bound: dict, compute: torch.dtype) -> tuple[Any, list]:
        """The math function this call runs (`select` may pick it) and its Scalar parameters."""
        fn = self.select(bound) if self.select else self.fn
        return fn, self.prepare(bound, compute) if self.prepare else [bound[name] for name in self.params]


# Python number types that leave a tensor's dtype as it is in type promotion (a float beside an integer
# tensor makes it float; a number beside a bool tensor makes it a number), and each dtype's promotion.
_KEEPS = {**{d: (int, float, bool) for d in (torch.float32, torch.float16, torch.bfloat16)},
          **{d: (int, bool) for d in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)},
          torch.bool: (bool,)}
_PROMOTED: dict[tuple, tuple] = {}  # (dtype, promotion kind) -> promote()'s (common, compute, result)

_SIGNATURES: dict[int, tuple] = {}  # id(schema) -> (schema, [(name, has default, default)])


def bind(schema: torch.FunctionSchema, args: tuple, kwargs: dict) -> dict:
    """Schema argument name -> value, defaults filled in (the dispatcher passes kwarg-only ones by name).
    The schema's arguments are read once: each read of `schema.arguments` builds new Python objects,
    which cost a few microseconds on every call of every op."""
    entry = _SIGNATURES.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _SIGNATURES[id(schema)] = (schema, [(a.name, a.has_default_value(), a.default_value if a.has_default_value()
                                                     else None) for a in schema.arguments])
    bound = dict(zip((name for name, _, _ in entry[1]), args))
    for name, has_default, default in entry[1][len(args):]:
        if name in kwargs:
            bound[name] = kwargs[name]
        elif has_default:
            bound[name] = list(default) if isinstance(default, list) else default  # a wrapper may extend it
    return bound


def out_argument(schema: torch.FunctionSchema) -> str | None:
    """The name of the keyword-only argument an `out=` overload writes (`out`, `grad_input`, ...)."""
    for argument in schema.arguments:
        if argument.kwarg_only and argument.alias_info is not None and argument.alias_info.is_write:
            return argument.name
    return None


def register_pointwise(category: str, op: Pointwise, overloads: str) -> None:
    """Register `op` under each overload in the space-separated `overloads`, as its variant asks."""
    for overload in overloads.split():
        packet, _, name = overload.partition(".")
        schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
        out_name = out_argument(schema)
        dunder = packet.startswith("__") and packet.endswith("__")  # __rshift__ is functional, __irshift__ in-place
        inplace = out_name is None and (packet.startswith("__i") if dunder else packet.endswith("_"))

        def wrapper(*args: Any, _schema=schema, _out=out_name, _inplace=inplace, **kwargs: Any) -> torch.Tensor:
            bound = bind(_schema, args, kwargs)
            return op(bound, out=bound.get(_out) if _out else None, inplace=_inplace)

        register(overload, wrapper, op.dtypes, category)


def register_unary_table(category: str, table: list) -> None:
    """Register rows of (math function, dtypes claimed, type promotion, overloads): the plain unary ops."""
    for fn, dtypes, kind, overloads in table:
        register_pointwise(category, Pointwise(fn, dtypes, kind=kind), overloads)


def scalar_number(value: Any) -> Number:
    """A Scalar argument as a Python number (ATen may hand a 0-dim tensor)."""
    return value.item() if isinstance(value, torch.Tensor) else value
