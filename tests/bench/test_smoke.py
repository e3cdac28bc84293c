"""`tilebridge bench` end to end in quick mode, plus the suite's bookkeeping without any kernels.

The end-to-end test runs the command in a fresh interpreter, as CI and users do, on a subset of
kernels chosen to cover each kind of case (elementwise, row-wise, a two-kernel backward, a product,
fused attention) and the interpreter comparison; it stays well under a minute on two cores with a
cold kernel cache. The other tests feed the suite fake cases, so they need no compiler at all.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tilebridge.bench import report
from tilebridge.bench.cases import MEMORY, Case, Workload, all_cases, kernel_names
from tilebridge.bench.interpreter import InterpreterComparison
from tilebridge.bench.roofline import Machine
from tilebridge.bench.scaling import Scaling
from tilebridge.bench.suite import CaseResult, SuiteResult, run_case, select_cases

SUBSET = ["add", "softmax", "layer_norm_bwd", "matmul", "attention"]
CASE_KEYS = {"name", "kernel", "shape", "bound", "status", "error", "correct", "max_abs_error", "first_call_s", "tilebridge_s",
             "torch_s", "ratio", "achieved", "achieved_unit", "bytes", "flops", "roofline_s", "roofline_fraction", "repetitions"}


def test_quick_suite_writes_json_plot_and_markdown(tmp_path: Path) -> None:
    paths = {flag: tmp_path / name for flag, name in (("--json", "bench.json"), ("--plot", "bench.png"),
                                                       ("--markdown", "performance.md"))}
    command = [sys.executable, "-m", "tilebridge", "bench", "--quick", "--only", ",".join(SUBSET)]
    for flag, path in paths.items():
        command += [flag, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch/tilebridge" in done.stdout and "FAILED" not in done.stdout

    result = json.loads(paths["--json"].read_text())
    assert {"mode", "command", "machine", "cases", "interpreter", "summary", "versions", "total_s"} <= set(result)
    assert result["mode"] == "quick"
    machine = result["machine"]
    assert machine["copy_bandwidth_gbs"] > 0 and machine["sgemm_gflops"] > 0 and machine["cores"] >= 1
    assert {"avx512f", "avx512_bf16"} <= set(machine["simd_flags"])
    assert {case["kernel"] for case in result["cases"]} == set(SUBSET)
    for case in result["cases"]:
        assert CASE_KEYS <= set(case), case
        assert case["status"] == "ok" and case["correct"] is True, case
        assert case["tilebridge_s"] > 0 and case["torch_s"] > 0 and case["ratio"] > 0 and case["roofline_fraction"] > 0
    assert result["summary"]["all_correct"] and result["summary"]["geomean_ratio"]["memory"] > 0
    assert [row["kernel"] for row in result["interpreter"]] == SUBSET
    for row in result["interpreter"]:
        assert row["error"] is None and row["speedup"] > 0, row

    if result["machine"]["torch_threads"] > 1:  # the compute-bound cases timed at one thread and at all of them
        scaled = {row["name"] for row in result["scaling"]}
        assert scaled == {case["name"] for case in result["cases"] if case["bound"] == "compute"}
        for row in result["scaling"]:
            assert row["error"] is None and row["speedup"] > 0 and row["torch_speedup"] > 0, row

    startup = result["startup"]
    assert startup["error"] is None, startup
    assert 0 < startup["triton_dispatch_s"] < startup["launch_s"] and startup["cold_compile_median_s"] > 0
    assert 0 < startup["new_process_launch_s"] < 5 and len(startup["cold_compile_s"]) == 6

    assert paths["--plot"].read_bytes().startswith(b"\x89PNG")
    markdown = paths["--markdown"].read_text()
    for needle in ("## Machine", "copy bandwidth", "sgemm rate", "tilebridge bench --quick", "| case |", "geometric mean",
                   "## Launch and compile", "tilebridge adds"):
        assert needle in markdown


def test_only_accepts_kernels_and_case_names_and_rejects_others() -> None:
    cases = all_cases(quick=True)
    assert {c.kernel for c in select_cases(cases, ["matmul"])} == {"matmul"}  # not matmul_bf16
    first = cases[0].name
    assert [c.name for c in select_cases(cases, [first])] == [first]
    assert set(kernel_names()) == {c.kernel for c in all_cases(quick=False)}
    with pytest.raises(ValueError, match="unknown case or kernel 'nope'"):
        select_cases(cases, ["nope"])


def _machine() -> Machine:
    return Machine("test CPU", 2, {"avx512f": True, "avx512_bf16": False}, "1 MiB", 2, 1 << 20, 10.0, 64, 100.0)


def _workload(ours) -> Workload:
    x = torch.arange(8.0)
    return Workload(ours, lambda: x * 2, bytes=64, flops=8, elements=8)


def test_failing_and_wrong_cases_become_failed_rows() -> None:
    def broken() -> torch.Tensor:
        raise RuntimeError("unsupported construct tt.frobnicate at kernel.py:3")

    compile_error = run_case(Case("broken", "8", MEMORY, lambda: _workload(broken)), _machine())
    assert compile_error.status == "failed" and compile_error.correct is None
    assert compile_error.error == "RuntimeError: unsupported construct tt.frobnicate at kernel.py:3"
    wrong = run_case(Case("wrong", "8", MEMORY, lambda: _workload(lambda: torch.arange(8.0))), _machine())
    assert wrong.status == "failed" and wrong.correct is False and wrong.error.startswith("wrong result")
    right = run_case(Case("right", "8", MEMORY, lambda: _workload(lambda: torch.arange(8.0) * 2)), _machine())
    assert right.ok and right.correct and right.ratio > 0 and right.roofline_fraction > 0

    result = SuiteResult(_machine(), [compile_error, wrong, right], [], "quick", "tilebridge bench --quick", "now")
    text = report.format_terminal(result)
    assert "FAILED: RuntimeError: unsupported construct tt.frobnicate" in text and "FAILED: wrong result" in text
    assert result.as_dict()["summary"]["failed"] == ["broken 8", "wrong 8"]


def test_memory_cases_time_a_copy_and_the_kernel_into_given_outputs() -> None:
    x = torch.randn(1 << 16)
    given, calls = torch.empty_like(x), []

    def into_given() -> torch.Tensor:
        calls.append(1)
        return torch.mul(x, 2, out=given)

    workload = Workload(lambda: x * 2, lambda: x * 2, bytes=8 * x.numel(), flops=x.numel(), elements=x.numel(),
                        given_output=into_given)
    result = run_case(Case("scale", "64k", MEMORY, lambda: workload), _machine())
    assert result.ok and len(calls) >= 2  # checked once, then timed with the rest
    assert result.given_output_s and result.kernel_s == result.given_output_s
    # the roofline is the interleaved copy of the case's bytes, not the machine's 10 GB/s figure
    assert result.roofline_s != _machine().roofline_s(MEMORY, workload.bytes, workload.flops)
    assert result.roofline_fraction == pytest.approx(result.roofline_s / result.given_output_s)
    assert report.case_row(result)[-1].endswith("%*")

    wrong = Workload(lambda: x * 2, lambda: x * 2, bytes=8, flops=1, elements=1, given_output=lambda: x * 3)
    failed = run_case(Case("scale", "64k", MEMORY, lambda: wrong), _machine())
    assert not failed.ok and failed.error.startswith("wrong result writing into given outputs")


def test_markdown_keeps_the_hand_written_header(tmp_path: Path) -> None:
    ok = CaseResult("add 8", "add", "8", MEMORY, "ok", correct=True, bytes=96, flops=8, tilebridge_s=1e-6, torch_s=2e-6,
                    roofline_s=5e-7)
    failed = CaseResult("softmax 8x8", "softmax", "8x8", MEMORY, "failed", error="CompilationError: line 1\ndetails")
    comparison = InterpreterComparison("add", "16", 16, 1e-3, 1e-6)
    scalings = [Scaling("matmul 8x8x8", 2, 4e-6, 2e-6, 3e-6, 2e-6), Scaling("attention 8", 2, 3e-6, 2e-6, 3e-6, 2e-6)]
    result = SuiteResult(_machine(), [ok, failed], [comparison], "quick", "tilebridge bench --quick", "now",
                         scaling=scalings)
    assert result.geomean_ratio(MEMORY) == pytest.approx(2.0)

    path, plot = tmp_path / "docs" / "performance.md", tmp_path / "docs" / "performance.png"
    path.parent.mkdir()
    report.write_markdown(result, path, plot)
    first = path.read_text()
    assert first.startswith(report.DEFAULT_HEADER) and "![torch/tilebridge per case](performance.png)" in first
    assert "FAILED: CompilationError: line 1" in first and "1000x" in first
    assert "## Thread scaling" in first and "| matmul 8x8x8 | 4 us | 2 us | 2.00x |" in first
    assert "1.50x to 2.00x (target 1.7x); below it: attention 8 (1.50x)" in first
    generated = first.split(report.GENERATED_MARKER, 1)[1]
    path.write_text("# My header\n\nProse that must survive.\n\n" + report.GENERATED_MARKER + generated)
    report.write_markdown(result, path, plot)
    second = path.read_text()
    assert second.startswith("# My header\n\nProse that must survive.\n") and second.count(report.GENERATED_MARKER) == 1
    report.write_plot(result, plot)
    assert plot.read_bytes().startswith(b"\x89PNG")

    report.write_json(result, tmp_path / "run.json")
    again = report.load_json(tmp_path / "run.json")
    assert again.as_dict() == result.as_dict() and report.markdown(again) == report.markdown(result)


def test_interleaving_goes_through_every_order_of_the_sides() -> None:
    from tilebridge.bench.timing import TimingPolicy, interleaved_timings

    order: list[str] = []
    fns = [lambda name=name: order.append(name) for name in "abc"]
    _, repetitions = interleaved_timings(fns, TimingPolicy(budget_s=0, min_repetitions=6, max_repetitions=6, warmups=1))
    timed = order[3:]  # after one warm-up call each
    assert repetitions == 6 and sorted(timed) == sorted("abc" * 6)
    rounds = {"".join(timed[i:i + 3]) for i in range(0, 18, 3)}
    assert rounds == {"abc", "acb", "bac", "bca", "cab", "cba"}  # within the rounds, each follows each other twice
    many = [lambda: None] * 20  # 20! orders: shuffled rounds instead of the full list
    assert interleaved_timings(many, TimingPolicy(budget_s=0, min_repetitions=3, max_repetitions=3))[1] == 3
