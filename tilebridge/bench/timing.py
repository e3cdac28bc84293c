"""Wall-clock timing for a shared, noisy machine: warm-up, interleaving, medians.

Launches on the CPU are synchronous, so `time.perf_counter` around a call is the kernel's time. The
two sides of a comparison are interleaved (ours, theirs, ours, theirs, ...) so a burst of load from
another tenant hits both rather than one, and the median discards the bursts. The number of
repetitions adapts to the case, so cheap cases get many samples and a 4096^3 matmul gets a few.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimingPolicy:
    """How long to measure: aim for `budget_s` per side, but never fewer than `min_repetitions` samples."""

    budget_s: float = 2.0
    min_repetitions: int = 5
    max_repetitions: int = 200
    warmups: int = 1


FULL = TimingPolicy()
QUICK = TimingPolicy(budget_s=0.05, min_repetitions=3, max_repetitions=20)


def time_once(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(fns: Sequence[Callable[[], Any]], policy: TimingPolicy = FULL) -> tuple[list[float], int]:
    """Median seconds per call of each of `fns`, measured round-robin; returns (medians, repetitions).

    Warm-up calls first (page faults of fresh outputs, lazy initialisation in either library); their
    times only size the number of repetitions.
    """
    estimates = [min(time_once(fn) for _ in range(max(policy.warmups, 1))) for fn in fns]
    per_round = max(sum(estimates), 1e-9)
    repetitions = int(min(policy.max_repetitions, max(policy.min_repetitions, policy.budget_s * len(fns) / per_round)))
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repetitions):
        for fn, times in zip(fns, samples):
            times.append(time_once(fn))
    return [statistics.median(times) for times in samples], repetitions


def median_time(fn: Callable[[], Any], policy: TimingPolicy = FULL) -> float:
    """Median seconds per call of one callable (used where there is no second side to interleave with)."""
    return interleaved_medians([fn], policy)[0][0]
