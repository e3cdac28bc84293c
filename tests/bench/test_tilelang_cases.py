"""The TileLang cases of `tilebridge bench`: each quick case compiles and matches PyTorch, and the
summary pairs each TileLang case with the Triton case of the same family and shape."""
from __future__ import annotations

import pytest
import torch

from tilebridge.bench import tilelang_cases
from tilebridge.bench.cases import COMPUTE, kernel_names
from tilebridge.bench.suite import CaseResult

pytestmark = pytest.mark.skipif(not tilelang_cases.available(), reason="tilelang is not installed")


def test_quick_cases_match_torch() -> None:
    cases = tilelang_cases.cases(quick=True)
    assert {case.kernel for case in cases} == set(tilelang_cases.TWINS)
    assert set(tilelang_cases.TWINS) <= set(kernel_names())
    for case in cases:
        workload = case.setup()
        torch.testing.assert_close(workload.ours(), workload.reference(), **workload.tolerance)


def test_summary_pairs_tilelang_with_triton_cases() -> None:
    def result(kernel: str, shape: str, seconds: float | None, status: str = "ok") -> CaseResult:
        return CaseResult(f"{kernel} {shape}", kernel, shape, COMPUTE, status, tilebridge_s=seconds, torch_s=1.0)
    results = [result("matmul", "8x8x8", 2.0), result("tilelang_matmul", "8x8x8", 2.5),
               result("attention", "1x2x3x4", 1.0), result("tilelang_attention", "1x2x3x4", None, "failed"),
               result("tilelang_matmul", "9x9x9", 1.0)]
    (line,) = tilelang_cases.summary_lines(results)
    assert line.endswith("matmul 8x8x8 0.80x")
    assert tilelang_cases.summary_lines(results[:1]) == []
