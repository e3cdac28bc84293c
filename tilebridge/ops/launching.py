"""Launching the library's kernels: `kernel[grid](...)` as triton does it, minus its per-call work.

A small operator call spends more time in triton's `JITFunction.run` (binding 20-odd arguments,
building the cache key from them and the options, the driver's device and stream) than in its kernel.
A `Launchable` remembers the compiled kernel of each set of arguments it has launched, keyed by
their values except where triton ignores the value (a tensor by its dtype and 16-byte alignment, a
float by its type), so the key is never coarser than triton's own specialization. Later calls with
that key go straight to the compiled kernel through its public launcher (`CompiledKernel[grid]`),
which still runs triton's launch hooks: 4 us a launch, where triton's `run` took 13 of a 1024-element
`add`'s 60 us through the library.

Only where the library serves the CPU: on a GPU the compiled kernel also depends on the current
device, which triton's own path keeps track of, so there every launch takes that path.
"""
from __future__ import annotations

from typing import Any

import torch
import triton

from tilebridge.ops.registry import served_device

LIMIT = 4096  # remembered launches per kernel; past it the memory starts again (sizes seen in a long run)


def _key(values: list) -> tuple:
    """A key at least as fine as triton's specialization of these argument values: a tensor by its
    dtype and 16-byte alignment, a float by its type (triton never specializes on a float's value),
    an integer by its value, anything else (booleans, constexprs) by its type and value."""
    key = []
    for v in values:
        kind = type(v)
        if kind is torch.Tensor:
            key.append((v.dtype, v.data_ptr() & 15 == 0))
        elif kind is float:
            key.append(float)
        elif kind is int:
            key.append(v)
        else:  # with its type: True == 1, which triton specializes apart
            key.append((kind, v))
    return tuple(key)


class Launchable:
    """A `@triton.jit` kernel of the library, launched as `kernel[grid](*args, **constexprs)`."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.names = [p.name for p in getattr(fn, "params", ())]
        # the compiled kernels: only where `fn` is compiled (not under TRITON_INTERPRET)
        self.compiled: dict | None = {} if isinstance(fn, triton.runtime.JITFunction) else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fn, name)

    def __getitem__(self, grid: tuple):
        return lambda *args, **kwargs: self.launch(grid, args, kwargs)

    def launch(self, grid: tuple, args: tuple, kwargs: dict) -> Any:
        if self.compiled is None or served_device() != "cpu" or len(args) + len(kwargs) != len(self.names):
            return self.fn[grid](*args, **kwargs)
        try:
            values = [*args, *(kwargs[name] for name in self.names[len(args):])]
            key = _key(values)
            compiled = self.compiled.get(key)
        except (KeyError, TypeError):  # a missing argument (ATen's error to give), an unhashable constexpr
            return self.fn[grid](*args, **kwargs)
        if compiled is None:
            compiled = self.fn[grid](*args, **kwargs)
            if hasattr(compiled, "result"):  # compiled asynchronously: not kept
                return compiled
            if len(self.compiled) >= LIMIT:
                self.compiled.clear()
            self.compiled[key] = compiled
            return compiled
        compiled[(grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1)](*values)
        return compiled


def launchable(fn: Any) -> Launchable:
    """Decorator, above `@triton.jit`: the kernel launches through `Launchable`."""
    return Launchable(fn)
