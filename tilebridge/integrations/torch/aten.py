"""Route aten ops on CPU tensors to tilebridge's Triton operators, through `torch.library`.

The library's table (`tilebridge.ops.registry`) is registered on the `CPU` dispatch key with
`torch.library.Library("aten", "IMPL")`, so autograd, functionalization and every other key above
the backend keep working as they do for ATen, and backward ops are served like forward ones. Each
registered kernel keeps ATen's own CPU kernel (`torch.library.get_kernel`) to hand back every call
the wrapper declines. Calls made *inside* a wrapper (an `empty`, a `contiguous`) go straight to ATen,
so a wrapper never recurses into the library.
"""
from __future__ import annotations

import threading
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch._prims_common import ELEMENTWISE_TYPE_PROMOTION_KIND as Promotion
from torch._prims_common import elementwise_dtypes

from tilebridge.ops.policy import SERVED_BY_DEFAULT
from tilebridge.ops.registry import Decline, OpEntry, entries

# overload -> how often our kernel ran ("served"), how often it handed the call back ("declined"), and how often
# it was reached while `bypassed()` sent every call to ATen ("bypassed": what the alignment harness's ATen run
# reached, recorded without a Python dispatch mode, which would change ATen's own code paths).
COUNTERS: dict[str, Counter] = {"served": Counter(), "declined": Counter(), "bypassed": Counter()}

_state: dict[str, Any] = {"library": None, "overloads": (), "bypass": False}
_local = threading.local()


def _has_backend_kernel(overload: str) -> bool:
    """Only ops with a CPU (or composite-explicit) kernel reach the CPU key; implicit composites never do."""
    name = f"aten::{overload}"
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return has(name, "CPU") or has(name, "CompositeExplicitAutograd")


def _matches(entry: OpEntry, names: Iterable[str]) -> bool:
    return any(name in (entry.overload, entry.packet, entry.category, entry.overload.split(".")[0]) for name in names)


def _numbers_as_tensors(values: list[Any]) -> list[Any]:
    """Python numbers where the schema says Tensor, as 0-dim tensors ATen's boxed kernel accepts.

    ATen wraps such numbers in "wrapped number" tensors, which Python cannot make. A 0-dim tensor
    promotes like a number next to a tensor with dimensions, so the number keeps the default dtype
    (float32 / int64) and its precision. Next to 0-dim tensors only, it would win the promotion, so it
    takes the promoted dtype instead, which gives ATen's result dtype.
    """
    numbers = [v for v in values if isinstance(v, (bool, int, float))]
    if not numbers:
        return values
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if tensors and all(t.dim() == 0 for t in tensors):
        common = elementwise_dtypes(*tensors, *numbers, type_promotion_kind=Promotion.NO_OPMATH)[1]
        return [torch.tensor(v, dtype=common) if isinstance(v, (bool, int, float)) else v for v in values]
    default = {bool: torch.bool, int: torch.int64, float: torch.get_default_dtype()}
    return [torch.tensor(v, dtype=default[type(v)]) if isinstance(v, (bool, int, float)) else v for v in values]


def _tensor_positions(overload: str) -> tuple[set[int], set[str]]:
    """Positions and names of the Tensor-typed arguments of an overload."""
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    tensors = [(i, a.name) for i, a in enumerate(schema.arguments) if str(a.type) == "Tensor"]
    return {i for i, _ in tensors}, {n for _, n in tensors}


def _kernel(entry: OpEntry, original: Any):
    """The boxed kernel registered for `entry`: run the wrapper, or hand the call back to ATen."""
    wrapper, overload = entry.wrapper, entry.overload
    positions, names = _tensor_positions(overload)

    def call_original(keyset: Any, args: tuple, kwargs: dict) -> Any:
        tensor_args = [a for i, a in enumerate(args) if i in positions] + [v for k, v in kwargs.items() if k in names]
        if any(isinstance(v, (bool, int, float)) for v in tensor_args):
            converted = iter(_numbers_as_tensors(tensor_args))
            args = tuple(next(converted) if i in positions else a for i, a in enumerate(args))
            kwargs = {k: next(converted) if k in names else v for k, v in kwargs.items()}
        return original.call_boxed(keyset, *args, **kwargs)

    def kernel(keyset: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "inside", False):
            return call_original(keyset, args, kwargs)
        if _state["bypass"]:
            COUNTERS["bypassed"][overload] += 1
            return call_original(keyset, args, kwargs)
        _local.inside = True
        try:
            result = wrapper(*args, **kwargs)
        except Decline:
            result = Decline
        finally:
            _local.inside = False
        if result is Decline:
            COUNTERS["declined"][overload] += 1
            return call_original(keyset, args, kwargs)
        COUNTERS["served"][overload] += 1
        return result

    return kernel


def _by_default(entry: OpEntry, include: Iterable[str] | None, everything: bool) -> bool:
    """With no selection given, only ops measured at least as fast as ATen are served (`ops/policy.py`)."""
    return everything or include is not None or entry.packet in SERVED_BY_DEFAULT


def enable(include: Iterable[str] | None = None, exclude: Iterable[str] | None = None, everything: bool = False
           ) -> list[str]:
    """Serve aten ops on CPU tensors with tilebridge's operators; returns the overloads registered.

    `include`/`exclude` select by overload ("add.out"), op ("add") or category ("reduction").
    With no `include`, only the ops measured at least as fast as ATen are served
    (`tilebridge.ops.policy`, from `tilebridge bench --operators`); an `include` selection is served
    as asked, and `everything=True` serves the whole library, as the alignment harness and the model
    runs do.
    Calling it again replaces the selection.
    """
    disable()
    table = entries()
    chosen = [e for e in table.values()
              if (include is None or _matches(e, include)) and not (exclude and _matches(e, exclude))
              and _by_default(e, include, everything) and _has_backend_kernel(e.overload)]
    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Overriding a previously registered kernel.*")
        warnings.filterwarnings("ignore", message=".*Warning only once for all operators.*")
        for entry in chosen:
            original = torch.library.get_kernel(f"aten::{entry.overload}", "CPU")
            library.impl(entry.overload, _kernel(entry, original), "CPU", with_keyset=True)
    _state["library"] = library
    _state["overloads"] = tuple(e.overload for e in chosen)
    return list(_state["overloads"])


def disable() -> None:
    """Give every op back to ATen (a no-op when the library is not enabled)."""
    library = _state["library"]
    if library is not None:
        library._destroy()
    _state["library"] = None
    _state["overloads"] = ()


def enabled_overloads() -> tuple[str, ...]:
    """The aten overloads currently served by the library."""
    return _state["overloads"]


@contextmanager
def bypassed() -> Iterator[None]:
    """Every registered op goes straight to ATen for the duration, without unregistering anything.

    The alignment harness runs each sample with ATen and with the library many thousand times; this
    switch costs nothing, where re-registering the table costs a tenth of a second.
    """
    previous = _state["bypass"]
    _state["bypass"] = True
    try:
        yield
    finally:
        _state["bypass"] = previous


@contextmanager
def use_ops(include: Iterable[str] | None = None, exclude: Iterable[str] | None = None, everything: bool = False
            ) -> Iterator[list[str]]:
    """`enable(include, exclude, everything)` for a `with` block; what was enabled before comes back after."""
    previous = _state["overloads"]
    try:
        yield enable(include, exclude, everything)
    finally:
        disable()
        if previous:
            enable(include=previous)
