"""The Triton driver for the CPU: device, stream, properties, binary loading and the launcher.

Triton requires exactly one active driver. This one is active when no other (GPU) driver is, or
when the user asks for it with `TILEBRIDGE_DEVICE=cpu` or `tilebridge.activate()`.
"""
from __future__ import annotations

import os

from triton.backends.compiler import GPUTarget
from triton.backends.driver import DriverBase

from tilebridge.compat import check_versions

CPU_DEVICE_ID = 0


def _other_driver_active() -> bool:
    from triton.backends import backends
    for name, backend in backends.items():
        if name == "cpu":
            continue
        try:
            if backend.driver.is_active():
                return True
        except Exception:  # a broken GPU stack must not stop the CPU from working
            continue
    return False


class _Utils:
    @staticmethod
    def get_device_properties(device: object = None) -> dict:
        from tilebridge.runtime.device import device_properties
        return device_properties()

    @staticmethod
    def load_binary(name: str, kernel: bytes, shared: int, device: object):
        from tilebridge.runtime.launcher import load_library
        library = load_library(kernel)
        # Registers are a GPU notion; 32 per thread keeps occupancy arithmetic in user scripts
        # (e.g. the fused-softmax tutorial) finite and sensible.
        return library, library, 32, 0, 1 << 30


class CpuDriver(DriverBase):
    def __init__(self) -> None:
        check_versions()
        from tilebridge.runtime.launcher import Launcher
        self.utils = _Utils()
        self.launcher_cls = Launcher

    @staticmethod
    def is_active() -> bool:
        wanted = os.environ.get("TILEBRIDGE_DEVICE", "").lower()
        if wanted in ("cpu", "1", "on"):
            return True
        if wanted in ("off", "0", "none"):
            return False
        return not _other_driver_active()

    def map_python_to_cpp_type(self, ty: str) -> str:
        from tilebridge.ir.types import c_type_of_signature
        return c_type_of_signature(ty)

    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cpu", "native", 32)

    def get_active_torch_device(self):
        import torch
        return torch.device("cpu")

    def get_current_device(self) -> int:
        return CPU_DEVICE_ID

    def set_current_device(self, device: int) -> None:
        pass

    def get_current_stream(self, device: object = None) -> int:
        return 0

    def get_device_capability(self, device: object = None) -> tuple[int, int]:
        return (0, 0)

    def get_device_interface(self):
        from tilebridge.runtime.events import DeviceInterface
        return DeviceInterface

    def get_benchmarker(self):
        from triton.testing import do_bench
        return do_bench

    def get_empty_cache_for_benchmark(self):
        import torch

        from tilebridge.runtime.device import cpu_info
        # Writing a buffer larger than the last-level cache evicts the kernel's data between runs.
        return torch.empty(max(cpu_info().l3_bytes * 2, 64 << 20) // 4, dtype=torch.int32)

    def clear_cache(self, cache) -> None:
        cache.zero_()


def activate() -> None:
    from triton.backends import backends
    from triton.runtime.driver import driver
    if "cpu" not in backends:
        raise RuntimeError("the tilebridge Triton backend is not registered; reinstall tilebridge (pip install -e .)")
    driver.set_active(backends["cpu"].driver())


def deactivate() -> None:
    from triton.runtime.driver import driver
    driver.reset_active()
