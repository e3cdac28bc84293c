"""The Triton interpreter (same wheel) as the oracle for Triton semantics.

The interpreter only runs when `TRITON_INTERPRET=1` is set before triton's standard library is
imported (its `@jit` helpers such as `tl.sum` become interpreted functions then), so the oracle
runs in a subprocess. A test module declares its cases up front; the first test that needs an
expected value runs all of them in one subprocess, and each test compares tilebridge's result to
its own. Outputs are poisoned before each run so unwritten elements show.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def poison(t: torch.Tensor) -> torch.Tensor:
    if t.dtype.is_floating_point:
        return t.fill_(float("nan"))
    if t.dtype == torch.bool:
        return t.fill_(True)
    return t.fill_(-77 if t.dtype.is_signed else 77)


def load_source(source: str, name: str):
    """Import kernels from source text (triton reads kernel source from a real file)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / "tilebridge-test-kernels" / f"{name}_{digest}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Case:
    source: str
    kernel: str
    grid: tuple
    args: list
    outputs: list
    constexprs: dict = field(default_factory=dict)
    name: str = "case"
    # The interpreter computes bf16 wrongly with this numpy; such cases run it on float32 copies.
    oracle_dtype: torch.dtype | None = None
    # Looser bounds where the summation order may differ (long scans: the interpreter adds sequentially).
    tolerance: dict | None = None

    def run(self, dtype: torch.dtype | None = None) -> list:
        module = load_source(self.source, self.name)
        fn = getattr(module, self.kernel)
        args = [(a.to(dtype) if dtype is not None and a.is_floating_point() else a.clone())
                if isinstance(a, torch.Tensor) else a for a in self.args]
        for i in self.outputs:
            poison(args[i])
        fn[self.grid](*args, **self.constexprs)
        return [args[i] for i in self.outputs]


def tolerance(dtype: torch.dtype) -> dict:
    return {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12),
            torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}.get(
        dtype, dict(rtol=0, atol=0))


class Oracle:
    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.expected: dict | None = None

    def add(self, key: str, case: Case) -> None:
        case.name = "k_" + "".join(c if c.isalnum() else "_" for c in key)[:60]
        self.cases[key] = case

    def interpret_all(self) -> dict:
        if self.expected is None:
            with tempfile.TemporaryDirectory() as tmp:
                src, dst = Path(tmp) / "cases.pt", Path(tmp) / "expected.pt"
                torch.save(self.cases, src)
                env = dict(os.environ, TRITON_INTERPRET="1", TILEBRIDGE_DEVICE="off")
                subprocess.run([sys.executable, "-m", "tests.oracle", str(src), str(dst)], check=True, env=env,
                               cwd=ROOT)
                self.expected = torch.load(dst, weights_only=False)
        return self.expected

    def check(self, key: str) -> None:
        case = self.cases[key]
        expected = self.interpret_all()[key]
        if isinstance(expected, str):
            raise AssertionError(f"the interpreter failed on this case: {expected}")
        for ours, theirs in zip(case.run(), expected):
            if case.oracle_dtype is not None:  # float32 oracle: allow bf16 rounding after each operation
                scale = theirs.abs().max().item() + 1
                torch.testing.assert_close(ours.float(), theirs.float(), equal_nan=True, rtol=0.05, atol=0.02 * scale)
            else:
                torch.testing.assert_close(ours, theirs, equal_nan=True, **(case.tolerance or tolerance(ours.dtype)))


def _worker(src: str, dst: str) -> None:
    cases = torch.load(src, weights_only=False)
    out = {}
    for key, case in cases.items():
        try:
            out[key] = case.run(case.oracle_dtype)
        except Exception as e:  # recorded, so the test can report it
            out[key] = f"{type(e).__name__}: {e}"
    torch.save(out, dst)


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
