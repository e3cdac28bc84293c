"""Host-side integration of TileLang kernels: migration mode routes tilelang's own compile here once a
script imports tilelang, and tilelang's `do_bench` times with any backend on a machine without CUDA."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("tilelang", reason="tilelang 0.1.15 is not installed")

import torch  # noqa: E402

import tilebridge.frontends.tilelang as tilebridge_tilelang  # noqa: E402
from tests.frontends.tilelang import kernels  # noqa: E402

ROUTED_AFTER_IMPORT = """
import sys
import tilebridge
tilebridge.migrate()
assert "tilelang" not in sys.modules, "migrate() must not import tilelang itself"
import tilelang
from tilebridge.frontends.tilelang import _routes_here
assert _routes_here("auto") and _routes_here(None)
tilebridge.unmigrate()
assert not _routes_here("auto")
print("routed")
"""


def test_migration_mode_routes_tilelang_once_imported() -> None:
    result = subprocess.run([sys.executable, "-c", ROUTED_AFTER_IMPORT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "routed" in result.stdout


@pytest.mark.parametrize("backend", ["cupti", "event", "cudagraph", "wall"])
def test_profiler_do_bench_accepts_any_backend(backend: str) -> None:
    kernel = tilebridge_tilelang.compile(kernels.softmax(64, 96, 8), out_idx=[1])
    latency = kernel.get_profiler().do_bench(backend=backend, warmup=1, rep=5)
    assert isinstance(latency, float) and latency > 0


def test_module_level_do_bench_is_wrapped() -> None:
    from tilelang.profiler import do_bench
    x = torch.randn(256)
    assert do_bench(lambda: x.exp(), backend="cupti", warmup=1, rep=2) > 0
