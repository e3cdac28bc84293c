"""The library's launch path (`tilebridge.ops.launching`): a launch whose arguments triton would
specialize the same way as an earlier one goes straight to that compiled kernel; any argument triton
specializes differently (an integer equal to 1 or a multiple of 16, a tensor's alignment or dtype, a
bool against an int) takes triton's own path, and every result is right."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl
from triton import knobs

from tilebridge.ops import launching, registry
from tilebridge.ops.launching import Launchable, launchable


@launchable
@triton.jit
def affine_kernel(X, Y, n, stride, scale, shift, FLIP: tl.constexpr, BLOCK: tl.constexpr):
    """Y[i] = X[i * stride] * scale + shift (negated with FLIP); `stride` and `n` stay specialized."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + i * stride, mask=i < n, other=0.0)
    y = x * scale + shift
    if FLIP:
        y = -y
    tl.store(Y + i, y, mask=i < n)


def _run(x: torch.Tensor, n: int, stride: int, scale: float, shift, flip: bool) -> torch.Tensor:
    y = torch.full((n,), float("nan"))
    affine_kernel[(triton.cdiv(n, 64),)](x, y, n, stride, scale, shift, FLIP=flip, BLOCK=64)
    expected = x[: n * stride: stride].double() * scale + float(shift)
    torch.testing.assert_close(y.double(), -expected if flip else expected, rtol=1e-6, atol=1e-6)
    return y


@pytest.fixture
def counted_runs(monkeypatch: pytest.MonkeyPatch) -> list:
    """Each launch that takes triton's own `JITFunction.run`, recorded."""
    calls: list = []
    original = affine_kernel.fn.run

    def run(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)
    monkeypatch.setattr(affine_kernel.fn, "run", run)
    monkeypatch.setattr(affine_kernel, "compiled", {})
    return calls


def test_same_specialization_skips_triton_run(counted_runs: list) -> None:
    x = torch.randn(300, generator=torch.Generator().manual_seed(0))
    _run(x, 100, 3, 2.0, 0.5, False)
    assert len(counted_runs) == 1
    for scale in (2.0, -1.5, 0.25):  # floats are never specialized: the same compiled kernel, new values
        _run(x, 100, 3, scale, 0.5, False)
    assert len(counted_runs) == 1


@pytest.mark.parametrize("change", [
    dict(stride=1),            # an integer equal to 1
    dict(n=96),                # a multiple of 16
    dict(n=97),                # another value (kept apart: values are the key)
    dict(offset=1),            # a tensor 4 bytes off 16-byte alignment
    dict(shift=True),          # a bool where an int was
    dict(flip=True),           # a constexpr
    dict(dtype=torch.float16),  # a tensor of another dtype
])
def test_every_other_specialization_takes_triton_path(counted_runs: list, change: dict) -> None:
    base = dict(n=100, stride=3, shift=1, flip=False, offset=0, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    data = torch.randn(400, generator=g)

    def call(n, stride, shift, flip, offset, dtype):
        _run(data[offset:].to(dtype), n, stride, 1.5, shift, flip)
    call(**base)
    call(**base)
    assert len(counted_runs) == 1
    call(**{**base, **change})
    assert len(counted_runs) == 2
    call(**{**base, **change})
    assert len(counted_runs) == 2


def test_other_devices_always_take_triton_path(counted_runs: list, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(200)
    _run(x, 50, 2, 1.0, 0.0, False)
    monkeypatch.setattr(registry, "_served", {"device": "cuda"})
    _run(x, 50, 2, 1.0, 0.0, False)  # served on "cuda", these CPU tensors still launch: through run
    assert len(counted_runs) == 2


def test_memory_starts_again_past_its_limit(counted_runs: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launching, "LIMIT", 3)
    x = torch.randn(400)
    for n in (10, 11, 12, 13):
        _run(x, n, 1, 1.0, 0.0, False)
    assert len(affine_kernel.compiled) == 1  # cleared when the fourth came
    _run(x, 13, 1, 1.0, 0.0, False)
    assert len(counted_runs) == 4


def test_launch_hooks_still_run(counted_runs: list, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    x = torch.randn(100)
    _run(x, 40, 2, 1.0, 0.0, False)
    monkeypatch.setattr(knobs.runtime, "launch_enter_hook", lambda metadata: seen.append(metadata))
    _run(x, 40, 2, 1.0, 0.0, False)
    assert len(counted_runs) == 1 and len(seen) == 1


def test_interpreted_kernels_launch_as_they_are() -> None:
    """Under TRITON_INTERPRET the decorated object is not compiled: every launch is triton's own."""
    class Interpreted:
        def __getitem__(self, grid):
            return lambda *args, **kwargs: ("interpreted", grid, args)
    wrapped = Launchable(Interpreted())
    assert wrapped.compiled is None
    assert wrapped[(2,)](1, 2) == ("interpreted", (2,), (1, 2))
