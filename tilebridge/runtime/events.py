"""Timing events and a device interface shaped like `torch.cuda`, which `triton.testing.do_bench` expects.

Launches on the CPU are synchronous, so an event records the host clock when it is recorded.
"""
from __future__ import annotations

import time


class Event:
    def __init__(self, enable_timing: bool = True) -> None:
        self.enable_timing = enable_timing
        self.time_ns: int | None = None

    def record(self, stream: object = None) -> None:
        self.time_ns = time.perf_counter_ns()

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: "Event") -> float:
        """Milliseconds from this event to `end`, as `torch.cuda.Event.elapsed_time` returns."""
        if self.time_ns is None or end.time_ns is None:
            raise RuntimeError("elapsed_time needs both events recorded")
        return (end.time_ns - self.time_ns) / 1e6


class _Stream:
    cuda_stream = 0

    def synchronize(self) -> None:
        pass


class DeviceInterface:
    """The subset of `torch.cuda` that triton's benchmarking and user scripts call."""

    Event = Event

    @staticmethod
    def synchronize(device: object = None) -> None:
        pass

    @staticmethod
    def current_device() -> int:
        return 0

    @staticmethod
    def current_stream(device: object = None) -> _Stream:
        return _Stream()

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1
