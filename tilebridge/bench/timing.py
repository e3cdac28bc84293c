"""Wall-clock timing for a shared, noisy machine: warm-up, interleaving, medians.

Launches on the CPU are synchronous, so `time.perf_counter` around a call is the kernel's time. The
two sides of a comparison are interleaved (ours, theirs, theirs, ours, ...) so a burst of load from
another tenant hits both rather than one, and the median discards the bursts. The number of
repetitions adapts to the case, so cheap cases get many samples and a 4096^3 matmul gets a few.
"""
from __future__ import annotations

import functools
import itertools
import os
import random
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
SCALING = TimingPolicy(budget_s=1.0, min_repetitions=5)  # four sides per case, two of them on one thread


def time_once(fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one side: the median (what reports use) and the best (how noisy the run was)."""

    median: float
    best: float


def interleaved_timings(fns: Sequence[Callable[[], Any]], policy: TimingPolicy = FULL) -> tuple[list[Timing], int]:
    """Median and best seconds per call of each of `fns`, measured round-robin; returns (timings, repetitions).

    Warm-up calls first (page faults of fresh outputs, lazy initialisation in either library); their
    times only size the number of repetitions. The rounds go through every order of the callables in
    turn, so each runs after each other equally often: a call inherits its predecessor's state (dirty
    cache lines still to be written back, a cold Python path after a large stream), and a fixed order
    would charge that to one side.
    """
    estimates = [min(time_once(fn) for _ in range(max(policy.warmups, 1))) for fn in fns]
    per_round = max(sum(estimates), 1e-9)
    repetitions = int(min(policy.max_repetitions, max(policy.min_repetitions, policy.budget_s * len(fns) / per_round)))
    samples: list[list[float]] = [[] for _ in fns]
    for round_ in range(repetitions):
        for index in round_order(len(fns), round_):
            samples[index].append(time_once(fns[index]))
    return [Timing(statistics.median(times), min(times)) for times in samples], repetitions


ALL_ORDERS_UP_TO = 4  # 24 orders; beyond, n! orders would not fit in memory, let alone in the rounds


@functools.cache
def _all_orders(count: int) -> tuple[tuple[int, ...], ...]:
    return tuple(itertools.permutations(range(count)))


def round_order(count: int, round_: int) -> tuple[int, ...]:
    """The order of the callables in one round: every order in turn for a few sides, a seeded
    shuffle for more (each side still follows each other about equally often)."""
    if count <= ALL_ORDERS_UP_TO:
        orders = _all_orders(count)
        return orders[round_ % len(orders)]
    order = list(range(count))
    random.Random(round_).shuffle(order)
    return tuple(order)


class OtherLoad:
    """How many cores other processes kept busy while the suite ran, from /proc/stat minus our own CPU time.

    On a shared machine a parallel region waits for its slowest thread, so one busy neighbour on one
    core can add a scheduler time slice (milliseconds) to every launch, ours and PyTorch's alike; the
    report prints this figure so such a run can be recognised and repeated.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        own = os.times()
        return busy, own.user + own.system + own.children_user + own.children_system, time.perf_counter()

    def cores(self) -> float | None:
        """Average number of cores that other processes used since this meter was made (None: unknown)."""
        end = self._sample()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        others = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return max(0.0, others / (end[2] - self.start[2]))


def median_time(fn: Callable[[], Any], policy: TimingPolicy = FULL) -> float:
    """Median seconds per call of one callable (used where there is no second side to interleave with)."""
    return interleaved_timings([fn], policy)[0][0].median
