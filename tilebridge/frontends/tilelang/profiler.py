"""tilelang's benchmark helper on a machine without a GPU: every timing backend becomes host wall time.

Upstream examples time kernels with `profiler.do_bench(backend="cupti")`, `"cudagraph"` or the default
`"event"` (CUDA events, an L2 flush buffer on the GPU). None of those exist without CUDA, and
tilebridge's kernels are synchronous host calls, so the host clock measures them exactly: tilelang's
own `"wall"` backend. `install()` wraps `tilelang.profiler.do_bench` (which `Profiler.do_bench` and
`from tilelang.profiler import do_bench` both reach) and `tilelang.profiler.bench.do_bench` once; the
wrapper changes the backend (and a CUDA `device`, which would select a GPU) only while torch has no
usable CUDA device, and otherwise passes every call through unchanged.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_state: dict[str, Any] = {"original": None}


def cuda_usable() -> bool:
    """True where torch itself can run CUDA kernels (migration mode's `torch.cuda` answers do not count)."""
    import torch
    try:
        return bool(torch.backends.cuda.is_built()) and torch._C._cuda_getDeviceCount() > 0
    except (AttributeError, RuntimeError):
        return False


def _is_cuda(device: Any) -> bool:
    import torch
    return torch.device(device).type == "cuda"


def host_timed(original: Callable) -> Callable:
    """`do_bench` with any GPU timing backend served by tilelang's own host wall-clock one."""
    @functools.wraps(original)
    def do_bench(fn: Callable, *args: Any, backend: str = "event", device: Any = None, **kwargs: Any) -> Any:
        if backend != "wall" and not cuda_usable():
            backend = "wall"
            if isinstance(device, int) or (device is not None and _is_cuda(device)):
                device = None  # a GPU to synchronize with; tilebridge's kernels return when done
        return original(fn, *args, backend=backend, device=device, **kwargs)
    do_bench.__wrapped__ = original
    return do_bench


def install() -> None:
    """Wrap tilelang's `do_bench` once (see the module docstring)."""
    if _state["original"] is not None:
        return
    import tilelang.profiler
    import tilelang.profiler.bench as bench
    original = _state["original"] = bench.do_bench
    wrapped = host_timed(original)
    bench.do_bench = wrapped
    tilelang.profiler.do_bench = wrapped
