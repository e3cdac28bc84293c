"""The `tilebridge` command end to end, in a fresh interpreter as a user runs it.

Subprocesses, not in-process calls: the doctor and the demo must work from a cold start, where
triton discovers the backend plugin during its own import, and their exit codes are the contract
that CI and users script against.
"""
from __future__ import annotations

import os
import subprocess
import sys

import tilebridge


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tilebridge", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tilebridge {tilebridge.__version__}"


def test_no_command_prints_help_and_fails() -> None:
    result = run_cli()
    assert result.returncode == 2
    for command in ("demo", "doctor", "bench"):
        assert command in result.stdout


def test_doctor_passes_on_this_machine() -> None:
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for check in ("C compiler", "OpenMP", "libmvec", "triton version", "torch version", "tilelang version", "backend registered",
                  "active driver", "device", "cache dir", "Triton vector add"):
        assert any(line.startswith("OK") and check in line for line in lines), f"no OK line for {check}:\n{result.stdout}"
    assert "FAIL" not in result.stdout
    assert "11/11 checks passed" in result.stdout


def test_doctor_fails_without_the_cpu_driver() -> None:
    # With the driver switched off (and no GPU) triton has no active driver: the doctor must say so and exit 1.
    result = run_cli("doctor", env={"TILEBRIDGE_DEVICE": "off"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert any(line.startswith("FAIL") and "active driver" in line for line in result.stdout.splitlines())
    assert any(line.startswith("OK") and "C compiler" in line for line in result.stdout.splitlines())


def test_demo_runs_checks_and_prints_the_table() -> None:
    result = run_cli("demo", "--repetitions", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for kernel in ("vector add", "row softmax", "matmul fp32"):
        assert any(line.startswith(kernel) for line in result.stdout.splitlines()), result.stdout
    assert "torch/tilebridge" in result.stdout
    assert "all kernels match PyTorch" in result.stdout
