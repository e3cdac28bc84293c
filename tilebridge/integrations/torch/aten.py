"""Route aten ops on CPU (or CUDA) tensors to tilebridge's Triton operators, through `torch.library`.

The library's table (`tilebridge.ops.registry`) is registered on the backend dispatch key of one
device (`CPU` by default, `CUDA` with `device="cuda"`) with `torch.library.Library("aten", "IMPL")`,
so autograd, functionalization and every other key above the backend keep working as they do for
ATen, and backward ops are served like forward ones. Each registered kernel keeps ATen's own kernel
for that key (`torch.library.get_kernel`) to hand back every call the wrapper declines. Calls made
*inside* a wrapper (an `empty`, a `contiguous`) go straight to ATen, so a wrapper never recurses into
the library.

Off the CPU, the operator sources are the same and stock Triton compiles them for the GPU. The
wrappers allocate with plain `torch.empty(shape)`, so on another device each call runs under
`torch.device(<its tensors' device>)`, which puts those allocations where the inputs are; a call whose
tensors sit on several devices is handed back to ATen.
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
from tilebridge.ops.registry import Decline, OpEntry, entries, serve_device, served_device

# overload -> how often our kernel ran ("served"), how often it handed the call back ("declined"), how often it
# raised an error of its own ("raised": the call ran our code, so the harness judges it like a result), and how
# often it was reached while `bypassed()` sent every call to ATen ("bypassed": what the alignment harness's ATen
# run reached, recorded without a Python dispatch mode, which would change ATen's own code paths).
COUNTERS: dict[str, Counter] = {"served": Counter(), "declined": Counter(), "raised": Counter(), "bypassed": Counter()}

# device type -> the dispatch key its tensors' backend kernels sit under.
DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}

# Overloads ATen's own kernels on a device call with a wrapped number made *on that device*, which torch
# cannot hand to a Python kernel (an internal assert converting it): CUDA's pow.Scalar wraps its base and
# calls pow.Tensor_Tensor_out. The library leaves them to ATen on those devices.
NOT_ON_DEVICE = {"cuda": frozenset({"pow.Tensor_Tensor_out"})}

_state: dict[str, Any] = {"library": None, "overloads": (), "bypass": False}
_local = threading.local()


def _has_backend_kernel(overload: str, key: str = "CPU") -> bool:
    """Only ops with a backend (or composite-explicit) kernel reach a backend key; implicit composites never do."""
    name = f"aten::{overload}"
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    return has(name, key) or has(name, "CompositeExplicitAutograd")


def device_type(device: str | torch.device) -> str:
    """"cpu" or "cuda" from anything `torch.device` takes; other devices have no key here yet."""
    kind = torch.device(device).type
    if kind not in DISPATCH_KEYS:
        raise ValueError(f"tilebridge's operator library registers on {sorted(DISPATCH_KEYS)}, not {kind!r}")
    return kind


def _tensors_of(args: tuple, kwargs: dict) -> Iterator[torch.Tensor]:
    """The tensor arguments of a call, those inside a list (cat, index) included."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


def call_device(args: tuple, kwargs: dict, kind: str) -> torch.device:
    """The one device a call's tensors (or its `device=` argument) are on; Decline when there are several.

    ATen accepts a CPU 0-dim tensor beside CUDA tensors (as a scalar); a Triton kernel cannot read it, so
    such calls go back to ATen, as do calls that ask for a result on another device.
    """
    devices = {t.device for t in _tensors_of(args, kwargs)}
    requested = torch.device(kwargs["device"]) if kwargs.get("device") is not None else None
    if len(devices) > 1 or any(d.type != kind for d in devices):
        raise Decline(f"tensors on {sorted(map(str, devices))}")
    if requested is not None:
        if requested.type != kind or (devices and requested.index is not None and requested not in devices):
            raise Decline(f"a result on {requested} asked of tensors on {sorted(map(str, devices))}")
        devices = devices or {requested}
    return next(iter(devices)) if devices else torch.device(kind)


@contextmanager
def allocating_on(device: torch.device) -> Iterator[None]:
    """Factory calls without a `device=` (the wrappers' `torch.empty`) allocate on `device` for the duration."""
    with torch.device(device):
        if device.type == "cuda" and device.index is not None:
            with torch.cuda.device(device):  # Triton launches on the current CUDA device
                yield
        else:
            yield


def _on_device(wrapper: Any, kind: str) -> Any:
    """`wrapper` run where its tensors are, for a device other than the CPU."""
    def on_device(*args: Any, **kwargs: Any) -> Any:
        with allocating_on(call_device(args, kwargs, kind)):
            return wrapper(*args, **kwargs)
    return on_device


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


def _kernel(entry: OpEntry, original: Any, kind: str = "cpu"):
    """The boxed kernel registered for `entry`: run the wrapper, or hand the call back to ATen."""
    overload = entry.overload
    wrapper = entry.wrapper if kind == "cpu" else _on_device(entry.wrapper, kind)
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
        except Exception:
            COUNTERS["raised"][overload] += 1
            raise
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


def enable(include: Iterable[str] | None = None, exclude: Iterable[str] | None = None, everything: bool = False,
           device: str | torch.device = "cpu") -> list[str]:
    """Serve aten ops on `device`'s tensors with tilebridge's operators; returns the overloads registered.

    `include`/`exclude` select by overload ("add.out"), op ("add") or category ("reduction").
    With no `include`, only the ops measured at least as fast as ATen are served
    (`tilebridge.ops.policy`, from `tilebridge bench --operators`); an `include` selection is served
    as asked, and `everything=True` serves the whole library, as the alignment harness and the model
    runs do. `device="cuda"` registers on the CUDA key instead, where stock Triton compiles the same
    kernels for the GPU (one device at a time: the CPU is ATen's again then).
    Calling it again replaces the selection.
    """
    kind = device_type(device)
    key = DISPATCH_KEYS[kind]
    disable()
    table = entries()
    chosen = [e for e in table.values()
              if (include is None or _matches(e, include)) and not (exclude and _matches(e, exclude))
              and _by_default(e, include, everything) and _has_backend_kernel(e.overload, key)
              and e.overload not in NOT_ON_DEVICE.get(kind, ())]
    serve_device(kind)
    library = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Overriding a previously registered kernel.*")
        warnings.filterwarnings("ignore", message=".*Warning only once for all operators.*")
        for entry in chosen:
            original = torch.library.get_kernel(f"aten::{entry.overload}", key)
            library.impl(entry.overload, _kernel(entry, original, kind), key, with_keyset=True)
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
    serve_device("cpu")


def enabled_overloads() -> tuple[str, ...]:
    """The aten overloads currently served by the library."""
    return _state["overloads"]


def enabled_device() -> str:
    """The device type the library was last enabled for ("cpu" unless `enable(device=...)` said otherwise)."""
    return served_device()


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
def use_ops(include: Iterable[str] | None = None, exclude: Iterable[str] | None = None, everything: bool = False,
            device: str | torch.device = "cpu") -> Iterator[list[str]]:
    """`enable(include, exclude, everything, device)` for a `with` block; what was enabled before comes back after."""
    previous, previous_device = _state["overloads"], served_device()
    try:
        yield enable(include, exclude, everything, device)
    finally:
        disable()
        if previous:
            enable(include=previous, device=previous_device)
