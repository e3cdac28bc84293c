"""What a user waits for besides the kernel: launch overhead, a cold compile, a new process's first launch.

- Warm launch: a launch of a one-program kernel against the same call with the compiled kernel's
  `run` replaced by a no-op, which is triton's own dispatch (argument binding, specialization,
  cache lookup); the difference is what tilebridge's launcher adds.
- Cold compile: the first call of each suite kernel in a process with an empty triton cache
  (a subprocess with a fresh `TRITON_CACHE_DIR`): triton's frontend, tilebridge's stages, the C compiler.
- New process: a second subprocess on the cache the first one filled, timing its first launch.
  Triton's specializer imports its `gluon` package lazily on the first launch of any kernel in a
  process (a GPU user pays it too); it is timed on its own, before the launch, so both figures show.

Run as `python -m tilebridge.bench.startup cold|warm` in the subprocesses; each prints one JSON line.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Startup:
    """Seconds; None where a part could not be measured (`error` says why)."""

    triton_dispatch_s: float | None = None        # triton's own per-launch work, no kernel run
    launch_s: float | None = None                 # a whole warm launch of a one-program kernel
    cold_compile_s: dict[str, float] | None = None  # first call per kernel with an empty cache
    triton_lazy_import_s: float | None = None     # triton importing gluon on a process's first launch
    new_process_launch_s: float | None = None     # first launch in a new process, kernel in the disk cache
    error: str | None = None

    @property
    def added_s(self) -> float | None:
        """What tilebridge's launch path adds to triton's dispatch."""
        return self.launch_s - self.triton_dispatch_s if self.launch_s and self.triton_dispatch_s else None

    @property
    def cold_compile_median_s(self) -> float | None:
        return statistics.median(self.cold_compile_s.values()) if self.cold_compile_s else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "added_s": self.added_s, "cold_compile_median_s": self.cold_compile_median_s}


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    fn()
    best = float("inf")
    for _ in range(5):  # best of five batches: the floor, as load on a shared machine only adds
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def warm_launch(calls: int = 2000) -> tuple[float, float]:
    """(whole launch, triton's dispatch alone) per call, for a one-program vector add."""
    from unittest import mock

    import torch

    from tilebridge.bench import kernels

    x, y, out = torch.randn(64), torch.randn(64), torch.empty(64)
    launch = lambda: kernels.vector_add(x, y, block=64, out=out)  # noqa: E731
    whole = _per_call(launch, calls)
    compiled = [k for cache in kernels.add_kernel.device_caches.values() for k in cache[0].values()]
    with mock.patch.object(type(compiled[0]), "run", new=property(lambda self: (lambda *a, **k: None))):
        dispatch = _per_call(launch, calls)
    return whole, dispatch


def _first_calls() -> dict[str, Callable[[], Any]]:
    """One call of each of a few suite kernels of different kinds, on small inputs."""
    import torch

    from tilebridge.bench import kernels

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1000, generator=g)
    w, b = torch.randn(1000, generator=g), torch.randn(1000, generator=g)
    a, m = torch.randn(200, 300, generator=g), torch.randn(300, 100, generator=g)
    q, k, v = (torch.randn(1, 2, 128, 64, generator=g) for _ in range(3))
    return {"add": lambda: kernels.vector_add(x.view(-1), x.view(-1)),
            "softmax": lambda: kernels.softmax(x),
            "layer_norm_fwd": lambda: kernels.layer_norm_forward(x, w, b),
            "cross_entropy": lambda: kernels.cross_entropy(x, torch.randint(0, 1000, (64,), generator=g)),
            "matmul": lambda: kernels.matmul(a, m),
            "attention": lambda: kernels.attention_forward(q, k, v)}


def _child(mode: str) -> dict[str, Any]:
    if mode == "cold":
        compiles = {}
        for name, call in _first_calls().items():
            start = time.perf_counter()
            call()
            compiles[name] = time.perf_counter() - start
        return {"cold_compile_s": compiles}
    import torch

    from tilebridge.bench import kernels

    x = torch.randn(4096)
    start = time.perf_counter()
    import triton.experimental.gluon.nvidia.hopper  # noqa: F401 - what triton's specializer imports on a first launch
    lazy = time.perf_counter() - start
    start = time.perf_counter()
    kernels.vector_add(x, x)
    first = time.perf_counter() - start
    whole, dispatch = warm_launch()  # here, not after the cold compiles: their garbage would be collected mid-timing
    return {"triton_lazy_import_s": lazy, "new_process_launch_s": first, "launch_s": whole, "triton_dispatch_s": dispatch}


def _run_child(mode: str, cache: str, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "TRITON_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-m", "tilebridge.bench.startup", mode], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} subprocess failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_startup(timeout: float = 300.0) -> Startup:
    """The three measurements, in two subprocesses sharing a fresh triton cache."""
    with tempfile.TemporaryDirectory(prefix="tilebridge-startup-") as cache:
        try:
            cold = _run_child("cold", cache, timeout)
            warm = _run_child("warm", cache, timeout)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
            return Startup(error=str(error))
    return Startup(**cold, **warm)


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1])))
