"""The operator table: which aten overloads the library serves, with which wrapper, for which dtypes.

Every operator module adds its entries here at import; `tilebridge.integrations.torch` registers the
table with PyTorch's dispatcher, and the alignment harness reads it to know which overloads are ours.
A wrapper that cannot serve a call (a dtype or layout it does not handle, a tensor too small to win)
raises `Decline`, and the integration hands the call back to ATen's own kernel: the library only ever
answers where it answers right.
"""
from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

FLOATS = frozenset({torch.float32, torch.float16, torch.bfloat16})
SIGNED = frozenset({torch.int8, torch.int16, torch.int32, torch.int64})
INTEGERS = SIGNED | {torch.uint8}
BOOL = frozenset({torch.bool})
ALL = FLOATS | INTEGERS | BOOL

# Modules of this package that hold helpers, not operators; every other module is a category and is
# imported by `entries()` (a new category is a new file, nothing else to edit).
HELPER_MODULES = frozenset({"registry", "pointwise", "strided", "policy", "launching"})


class Decline(Exception):
    """Raised by a wrapper to hand this call back to ATen (never an error the user sees)."""


@dataclass(frozen=True)
class OpEntry:
    """One aten overload served by the library."""

    overload: str                     # "add.Tensor", "exp.out", "_softmax_backward_data"
    wrapper: Callable[..., Any]
    dtypes: frozenset                 # dtypes of the deciding tensor this entry claims; others go to ATen
    category: str                     # module name: "elementwise", "reduction", ...

    @property
    def packet(self) -> str:
        """The op without its overload name ("add" for "add.out"), what "distinct aten ops" counts."""
        return packet_of(self.overload)


def packet_of(overload: str) -> str:
    """"add_.Tensor" -> "add": in-place, out= and functional overloads count as one aten op."""
    name = overload.split(".")[0]
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


TABLE: dict[str, OpEntry] = {}

# Category modules that failed to import under this torch/triton (module -> the error): their operators stay
# with ATen, and `entries()` says so once, instead of one broken module taking the whole library down.
UNAVAILABLE: dict[str, str] = {}

# The device type the table is registered for (`tilebridge.enable(device=...)`). Wrappers serve tensors of
# this type only; the same Triton sources run wherever stock Triton has a driver.
_served = {"device": "cpu"}


def served_device() -> str:
    """"cpu" or "cuda": the device type whose dispatch key the library is registered on."""
    return _served["device"]


def serve_device(device: str) -> None:
    """Set the device type wrappers accept (called by `enable()` before it registers the table)."""
    _served["device"] = device


def register(overload: str, wrapper: Callable[..., Any], dtypes: Iterable[torch.dtype], category: str) -> None:
    """Add one overload to the table; a second registration of the same overload is a bug."""
    if overload in TABLE:
        raise ValueError(f"aten overload {overload!r} registered twice ({TABLE[overload].category}, {category})")
    TABLE[overload] = OpEntry(overload, wrapper, frozenset(dtypes), category)


def claim(dtype: torch.dtype, entry_dtypes: Iterable[torch.dtype]) -> None:
    """Decline unless `dtype` is one the entry handles."""
    if dtype not in entry_dtypes:
        raise Decline(f"dtype {dtype}")


def entries() -> dict[str, OpEntry]:
    """The whole table, importing every operator module first (one that fails to import is left out, with a warning)."""
    for name in operator_modules():
        if name not in UNAVAILABLE:
            _import_category(name)
    return TABLE


def _import_category(name: str) -> None:
    before = set(TABLE)
    try:
        importlib.import_module(f"tilebridge.ops.{name}")
    except Exception as error:  # noqa: BLE001 -- reported below; the other categories still load
        for overload in set(TABLE) - before:  # entries the module added before it failed are not trusted
            del TABLE[overload]
        UNAVAILABLE[name] = f"{type(error).__name__}: {error}"
        warnings.warn(f"tilebridge.ops.{name} could not be imported ({UNAVAILABLE[name]}); its operators are left "
                      "to ATen", RuntimeWarning, stacklevel=3)


def operator_modules() -> list[str]:
    """The category modules of `tilebridge.ops`, in name order (so registration order is stable)."""
    package = importlib.import_module("tilebridge.ops")
    names = (info.name for info in pkgutil.iter_modules(package.__path__))
    return sorted(name for name in names if name not in HELPER_MODULES and not name.startswith("_"))
