"""The CPU as a device: cores, SIMD width, caches, read once from the operating system."""
from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int
    flags: frozenset[str]
    l1d_bytes: int
    l2_bytes: int
    l3_bytes: int

    @property
    def simd_bits(self) -> int:
        if "avx512f" in self.flags:
            return 512
        if "avx2" in self.flags or "avx" in self.flags:
            return 256
        return 128


def _cache_size(index: int, default: int) -> int:
    path = f"/sys/devices/system/cpu/cpu0/cache/index{index}/size"
    try:
        text = open(path).read().strip()
    except OSError:
        return default
    scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1], 1)
    return int(text.rstrip("KM")) * scale


@functools.cache
def cpu_info() -> CpuInfo:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model"):
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
            if model and flags:
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(model, cores, frozenset(flags), _cache_size(0, 48 * 1024), _cache_size(2, 1 << 20),
                   _cache_size(3, 32 << 20))


def device_properties() -> dict[str, int | str]:
    """The keys Triton user code reads from `utils.get_device_properties`, with CPU values.

    A "multiprocessor" is a core; shared memory is what one program may use for its tiles (the L2
    cache); the warp values keep GPU arithmetic in user scripts (e.g. occupancy estimates) sane.
    """
    info = cpu_info()
    return {
        "multiprocessor_count": info.cores,
        "max_shared_mem": max(info.l2_bytes, 1 << 30),  # tiles live in a heap arena, not on-chip
        "max_num_regs": 65536,
        "max_threads_per_sm": 2048,
        "warpSize": 32,
        "sm_clock_rate": 0,
        "mem_clock_rate": 0,
        "mem_bus_width": 0,
        "name": info.model,
    }
