"""Migration mode: host code written for CUDA runs on the tilebridge device (the CPU), unedited.

Kernels written for GPUs arrive inside scripts that say `device="cuda"`, call `.cuda()`, time with
`torch.cuda.Event` and wait with `torch.cuda.synchronize()`. `migrate()` maps what such code asks
of PyTorch onto the CPU, in the spirit of torch_npu's `transfer_to_npu`:

- devices: `"cuda"`, `"cuda:N"`, `torch.device("cuda", N)` and integer device indices, wherever a
  torch function or tensor method takes a device (factories, `.to(...)`, `new_*`, `*_like`), become
  the CPU; `tensor.cuda()` and `module.cuda()` return CPU tensors; `pin_memory()` is a no-op.
- `torch.cuda`: `is_available()` is True with one device; `synchronize`, `set_device`, `empty_cache`,
  `init` do nothing (tilebridge's kernels run synchronously); `Event(enable_timing=True)` times with
  the host clock; `get_device_properties`, `get_device_name`, `current_device`, `device_count`,
  memory queries, `manual_seed(_all)`, `Stream`/`current_stream`/`stream(...)` answer for the CPU.
- Triton: the CPU becomes triton's active driver (`tilebridge.activate()`).
- TileLang: kernels compiled without a target (or "auto") run through tilebridge's TileLang frontend,
  from the moment the script imports `tilelang` (importing it here would cost every script seconds).
- `torch.cpu.set_stream`, which device-generic code calls on `getattr(torch, device.type)` and CPU
  torch lacks, is added as a no-op.

What it cannot map: `tensor.is_cuda` and `tensor.device.type` stay those of a CPU tensor (they are
C++ properties); CUDA-only libraries (cuBLAS handles, NCCL, `torch.cuda.graphs`) and custom CUDA
extensions stay unavailable; every torch call pays a Python-level check of its arguments.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import runpy
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

CPU = torch.device("cpu")
_state: dict[str, Any] = {"mode": None, "saved": {}}


def cpu_for(device: Any) -> Any:
    """The CPU for a CUDA device in any spelling; anything else unchanged."""
    if isinstance(device, torch.device):
        return CPU if device.type == "cuda" else device
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        return CPU
    return device


class CudaToCpu(TorchFunctionMode):
    """Rewrites device arguments of every torch function and tensor method to the CPU."""

    # Tensor methods whose whole job is a CUDA transfer: the tensor is already where it should be.
    IDENTITY = {torch.Tensor.cuda, torch.Tensor.pin_memory}

    def __torch_function__(self, func, types, args: Sequence = (), kwargs: dict | None = None):
        kwargs = dict(kwargs or {})
        if func in self.IDENTITY:
            return args[0]
        if "device" in kwargs:
            device = kwargs["device"]
            kwargs["device"] = CPU if isinstance(device, int) and not isinstance(device, bool) else cpu_for(device)
        kwargs.pop("pin_memory", None)  # pinned host memory only matters for copies to a GPU
        if func is torch.Tensor.to:
            args = tuple(cpu_for(a) for a in args)
        return func(*args, **kwargs)


class HostEvent:
    """`torch.cuda.Event` on the host clock: kernels run synchronously, so a record is a time stamp."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
        self.stamp: float | None = None

    def record(self, stream: Any = None) -> None:
        self.stamp = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def wait(self, stream: Any = None) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: HostEvent) -> float:
        """Milliseconds from this event to `end`, as CUDA events report."""
        if self.stamp is None or end.stamp is None:
            raise RuntimeError("elapsed_time: both events must be recorded first")
        return (end.stamp - self.stamp) * 1e3


class HostStream:
    """A stand-in for `torch.cuda.Stream`: work on the CPU is already in order."""

    def __init__(self, device: Any = None, priority: int = 0, **kwargs: Any) -> None:
        self.device = CPU

    def synchronize(self) -> None:
        pass

    def wait_stream(self, stream: Any) -> None:
        pass

    def wait_event(self, event: Any) -> None:
        pass

    def record_event(self, event: HostEvent | None = None) -> HostEvent:
        event = event or HostEvent()
        event.record()
        return event

    def query(self) -> bool:
        return True


def _memory() -> tuple[int, int]:
    """(free, total) bytes of host memory."""
    page = os.sysconf("SC_PAGE_SIZE")
    return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page


def device_properties(device: Any = None) -> SimpleNamespace:
    """What `torch.cuda.get_device_properties` answers, for the CPU: name, memory, cores."""
    from tilebridge.runtime.device import cpu_info

    info = cpu_info()
    return SimpleNamespace(name=f"tilebridge CPU ({info.model})", total_memory=_memory()[1],
                           multi_processor_count=os.cpu_count() or 1, major=0, minor=0, is_integrated=True,
                           is_multi_gpu_board=False, warp_size=32)


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def _seed(seed: int) -> None:
    """The CPU generator only: `torch.manual_seed` itself seeds CUDA's generators through this module."""
    torch.default_generator.manual_seed(int(seed))


# torch.cuda attribute -> its CPU answer.
CUDA_API: dict[str, Any] = {
    "is_available": lambda: True, "is_initialized": lambda: True, "init": _nothing, "device_count": lambda: 1,
    "current_device": lambda: 0, "set_device": _nothing, "synchronize": _nothing, "empty_cache": _nothing,
    "ipc_collect": _nothing, "get_device_name": lambda device=None: device_properties().name,
    "get_device_capability": lambda device=None: (0, 0), "get_device_properties": device_properties,
    "mem_get_info": lambda device=None: _memory(), "memory_allocated": lambda device=None: 0,
    "max_memory_allocated": lambda device=None: 0, "memory_reserved": lambda device=None: 0,
    "max_memory_reserved": lambda device=None: 0, "reset_peak_memory_stats": _nothing,
    "reset_max_memory_allocated": _nothing, "manual_seed": _seed, "manual_seed_all": _seed,
    "seed": lambda: torch.default_generator.seed(), "seed_all": lambda: torch.default_generator.seed(),
    "Event": HostEvent, "Stream": HostStream,
    "current_stream": lambda device=None: HostStream(), "default_stream": lambda device=None: HostStream(),
    "stream": lambda stream=None: contextlib.nullcontext(stream),
    "device": lambda device=None: contextlib.nullcontext(device),
}


# torch.cpu names that device-generic host code (`getattr(torch, device.type).set_stream(...)`, as in
# Triton's softmax tutorial) expects of every device module, where CPU torch lacks them.
CPU_API: dict[str, Any] = {"set_stream": _nothing}


def _route_tilelang() -> None:
    from tilebridge.frontends.tilelang import activate

    activate()


class RouteTileLangOnImport(importlib.abc.MetaPathFinder):
    """Turns on tilebridge's TileLang routing right after `tilelang` is first imported.

    It answers only for the top-level `tilelang` package: it takes itself off `sys.meta_path`, finds
    the real spec and wraps that spec's loader so the routing starts once the package has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tilelang":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def run_then_route(module: Any) -> None:
            run(module)
            _route_tilelang()
        spec.loader.exec_module = run_then_route  # type: ignore[method-assign]
        return spec


def _start_tilelang_routing() -> None:
    if "tilelang" in sys.modules:
        _route_tilelang()
    elif importlib.util.find_spec("tilelang") is not None:
        finder = _state["tilelang_finder"] = RouteTileLangOnImport()
        sys.meta_path.insert(0, finder)


def _stop_tilelang_routing() -> None:
    finder = _state.pop("tilelang_finder", None)
    if finder in sys.meta_path:
        sys.meta_path.remove(finder)
    if "tilebridge.frontends.tilelang" in sys.modules:
        sys.modules["tilebridge.frontends.tilelang"].deactivate()


def migrate() -> None:
    """Map CUDA requests onto the CPU for the rest of this process (see the module docstring)."""
    if _state["mode"] is not None:
        return
    import tilebridge

    tilebridge.activate()
    _state["saved"] = {name: getattr(torch.cuda, name) for name in CUDA_API if hasattr(torch.cuda, name)}
    for name, value in CUDA_API.items():
        setattr(torch.cuda, name, value)
    _state["added_cpu"] = [name for name in CPU_API if not hasattr(torch.cpu, name)]
    for name in _state["added_cpu"]:
        setattr(torch.cpu, name, CPU_API[name])
    _start_tilelang_routing()
    mode = CudaToCpu()
    mode.__enter__()
    _state["mode"] = mode


def unmigrate() -> None:
    """Undo `migrate()`: torch.cuda and device arguments behave as before."""
    mode = _state["mode"]
    if mode is None:
        return
    mode.__exit__(None, None, None)
    for name in CUDA_API:
        if name in _state["saved"]:
            setattr(torch.cuda, name, _state["saved"][name])
        else:
            delattr(torch.cuda, name)
    for name in _state.pop("added_cpu", []):
        delattr(torch.cpu, name)
    _stop_tilelang_routing()
    _state["mode"] = None


def run_script(path: str, argv: Sequence[str] = ()) -> None:
    """`python -m tilebridge run SCRIPT ARGS`: run a script as `__main__` under migration mode."""
    migrate()
    sys.argv = [path, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    runpy.run_path(path, run_name="__main__")
