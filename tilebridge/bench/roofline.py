"""The machine's measured limits, in the same run as the kernels: copy bandwidth and sgemm rate.

A roofline from datasheet peaks would say little on a shared virtual machine, whose cores, memory
channels and turbo state are unknown; what PyTorch itself achieves on the same machine, minutes
apart, is the attainable limit. So the memory roof is a `copy_` (read + write counted), and the
compute roof is ATen's fp32 GEMM (MKL/oneDNN) on 2048^2 matrices. A memory-bound case's roofline
time is that of a copy moving the case's own bytes, timed interleaved with the case (`copy_moving`);
the copy of a tensor far larger than the private caches, measured once at the start, describes the
machine. A compute-bound case's roofline time is its flops / sgemm rate. "Fraction of roofline" is
roofline time / tilebridge time.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tilebridge.bench.timing import TimingPolicy, median_time
from tilebridge.runtime.device import cpu_info

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "asimd", "sve")


@dataclass(frozen=True)
class Machine:
    """What the report says about the host, and its two measured roofs."""

    cpu_model: str
    cores: int
    simd_flags: dict[str, bool]
    l3_cache: str
    torch_threads: int
    copy_bytes: int
    copy_bandwidth_gbs: float  # 1e9 bytes per second, read + write
    sgemm_size: int
    sgemm_gflops: float

    def roofline_s(self, bound: str, moved_bytes: int, flops: int) -> float:
        """Seconds the case would take at the measured limit of whatever bounds it."""
        if bound == "memory":
            return moved_bytes / (self.copy_bandwidth_gbs * 1e9)
        return flops / (self.sgemm_gflops * 1e9)

    def as_dict(self) -> dict:
        return asdict(self)


def _l3_cache() -> str:
    """The last-level cache ("300 MiB"): it decides which sizes are DRAM-bound."""
    return f"{cpu_info().l3_bytes / (1 << 20):g} MiB"


def measure_copy_bandwidth(megabytes: int = 256, policy: TimingPolicy | None = None) -> float:
    """GB/s of `dst.copy_(src)` for fp32 tensors of `megabytes` MiB, counting the read and the write."""
    src = torch.randn(megabytes * (1 << 20) // 4)
    dst = torch.empty_like(src)
    seconds = median_time(lambda: dst.copy_(src), policy or TimingPolicy(budget_s=1.0, min_repetitions=5))
    return 2 * src.numel() * 4 / seconds / 1e9


def copy_moving(moved_bytes: int) -> Callable[[], Any]:
    """A `dst.copy_(src)` that moves `moved_bytes` (read + write), to time beside a memory-bound case.

    The shared machine's bandwidth drifts by a third within minutes (other tenants), so a roof
    measured once at the start would judge later cases by another machine's figure; a copy of the
    case's own byte count, interleaved with its two sides, is the roof in the same minutes.
    """
    src = torch.randn(max(moved_bytes // 8, 1))
    dst = torch.zeros_like(src)  # touched now: a copy into fresh pages would time the page faults
    return lambda: dst.copy_(src)


def measure_sgemm_rate(size: int = 2048, policy: TimingPolicy | None = None) -> float:
    """GFLOP/s of `torch.mm` on two fp32 size x size matrices (2 size^3 flops per product)."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    seconds = median_time(lambda: torch.mm(a, b), policy or TimingPolicy(budget_s=1.0, min_repetitions=5))
    return 2 * size**3 / seconds / 1e9


def measure_machine(quick: bool = False) -> Machine:
    """Describe the host and measure its roofs; quick mode uses smaller (cache-resident, so optimistic) sizes."""
    info = cpu_info()
    model, flags, cores = info.model, info.flags, info.cores
    copy_megabytes, sgemm_size = (32, 512) if quick else (256, 2048)
    policy = TimingPolicy(budget_s=0.1, min_repetitions=3) if quick else None
    return Machine(cpu_model=model, cores=cores, simd_flags={flag: flag in flags for flag in SIMD_FLAGS},
                   l3_cache=_l3_cache(), torch_threads=torch.get_num_threads(), copy_bytes=2 * copy_megabytes << 20,
                   copy_bandwidth_gbs=measure_copy_bandwidth(copy_megabytes, policy), sgemm_size=sgemm_size,
                   sgemm_gflops=measure_sgemm_rate(sgemm_size, policy))
