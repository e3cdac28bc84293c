"""Thread scaling of the compute-bound cases: the same workload with one thread and with all of them.

A compiler that splits a grid of programs over threads should turn N cores into nearly N times the
speed where the work is arithmetic; memory-bound cases are left out because two cores share one
memory bus. Both thread counts, for tilebridge and for PyTorch, are timed round-robin in the same
minutes (`torch.set_num_threads` before each call: tilebridge launches with torch's thread count), so
a burst of load from a neighbour hits all four alike.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tilebridge.bench.cases import COMPUTE, Case
from tilebridge.bench.timing import TimingPolicy, interleaved_timings

# The compute-bound cases scaled in a full run (the quick run takes its compute-bound cases as they are).
FULL_CASES = ("matmul 1024x1024x1024", "matmul 2048x2048x2048", "matmul_bf16 1024x1024x1024",
              "attention 1x8x1024x64", "attention 1x8x1024x64 causal", "attention 1x8x1024x128",
              "attention 1x8x1024x128 causal")
TARGET = 1.7  # speed-up from one thread to two that the compute-bound cases should reach


@dataclass
class Scaling:
    """Median seconds per call at one thread and at `threads`; speed-ups are one-thread time / N-thread time."""

    name: str
    threads: int
    tilebridge_1_s: float | None = None
    tilebridge_n_s: float | None = None
    torch_1_s: float | None = None
    torch_n_s: float | None = None
    error: str | None = None

    @property
    def speedup(self) -> float | None:
        return self.tilebridge_1_s / self.tilebridge_n_s if self.tilebridge_1_s and self.tilebridge_n_s else None

    @property
    def torch_speedup(self) -> float | None:
        return self.torch_1_s / self.torch_n_s if self.torch_1_s and self.torch_n_s else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup, "torch_speedup": self.torch_speedup}


def _with_threads(threads: int, fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        torch.set_num_threads(threads)
        return fn()
    return call


def scaling_cases(cases: Sequence[Case], quick: bool) -> list[Case]:
    """Which of the run's cases to scale: the named ones in a full run, every compute-bound one in a quick run."""
    if quick:
        return [c for c in cases if c.bound == COMPUTE and not c.kernel.startswith("tilelang")]
    return [c for c in cases if c.name in FULL_CASES]


def measure_scaling(cases: Sequence[Case], policy: TimingPolicy) -> list[Scaling]:
    """Time each case's two sides at one thread and at torch's current thread count, interleaved."""
    threads = torch.get_num_threads()
    results = []
    for case in cases:
        result = Scaling(case.name, threads)
        try:
            workload = case.setup()
            sides = [_with_threads(t, fn) for fn in (workload.ours, workload.reference) for t in (1, threads)]
            (ours_1, ours_n, torch_1, torch_n), _ = interleaved_timings(sides, policy)
            result.tilebridge_1_s, result.tilebridge_n_s = ours_1.median, ours_n.median
            result.torch_1_s, result.torch_n_s = torch_1.median, torch_n.median
        except Exception as error:  # noqa: BLE001 - reported in the table, like a failed case
            result.error = f"{type(error).__name__}: {error}"
        finally:
            torch.set_num_threads(threads)
        results.append(result)
    return results
