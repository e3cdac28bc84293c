"""The OpInfo alignment harness on a handful of PyTorch's own OpInfos: it runs, classifies, and finds 0 FAIL."""
from __future__ import annotations

import json

import torch

from tilebridge.tools import align, align_run
from tilebridge.tools.align_report import to_markdown, write


def test_harness_on_a_few_opinfos(tmp_path):
    tally = align_run.run(["add", "where", "nn.functional.silu", "sum"], dtypes=(torch.float32, torch.bfloat16, torch.int32),
                      variants=("sample", "noncontiguous", "out", "inplace", "error", "grad"), limit=6)
    assert tally.by_dtype["float32"]["PASS"] > 10
    assert tally.by_dtype["int32"]["PASS"] > 0
    assert all(counts["FAIL"] == 0 for counts in tally.by_dtype.values()), tally.failures
    clean, failing = tally.served_packets()
    assert {"add", "where", "silu", "silu_backward"} <= set(clean) and not failing
    data = write(tally, "test", str(tmp_path / "a.json"), str(tmp_path / "a.md"))
    assert json.loads((tmp_path / "a.json").read_text())["served_ops_without_fail"] == data["served_ops_without_fail"]
    assert "distinct aten ops served by tilebridge kernels with 0 FAIL" in to_markdown(data)


def test_classification_of_a_wrong_kernel_is_fail():
    on = align.Outcome(result=(torch.tensor([1.0, 2.0]),), served={"exp"})
    off = align.Outcome(result=(torch.tensor([1.0, 2.5]),), reached={"exp"})
    assert align.classify(off, on, None, {"exp"})[0] == "FAIL"
    declined = align.Outcome(result=(torch.tensor([1.0, 2.5]),), declined={"exp"})
    assert align.classify(off, declined, None, {"exp"})[0] == "FALLBACK"
    assert align.classify(align.Outcome(reached={"sin"}), align.Outcome(), None, {"exp"})[0] == "NOT_HIT"


def test_float64_judge_passes_a_result_closer_than_atens():
    exact = torch.tensor([1.0 / 3.0], dtype=torch.float64)
    ours = exact.to(torch.bfloat16)
    atens = ours + 2 ** -7  # one bf16 ulp off
    assert align.compare([ours], [atens], [exact]) == (True, "pass_vs_float64")
    assert not align.compare([atens + 0.5], [ours], [exact])[0]


def test_float64_judge_with_nan_in_the_reference():
    """A NaN where all three agree (a masked row) must not turn the judge's slack into NaN."""
    exact = torch.tensor([float("nan"), 1.0 / 3.0], dtype=torch.float64)
    ours = exact.to(torch.bfloat16)
    atens = ours.clone()
    atens[1] += 2 ** -7
    assert align.compare([ours], [atens], [exact]) == (True, "pass_vs_float64")
    assert not align.compare([atens + 0.5], [ours], [exact])[0]


def test_out_tensors_start_alike_on_both_runs():
    """Elements an op leaves unwritten in out= must read the same on the ATen and library runs."""
    for dtype in (torch.float32, torch.complex64, torch.int64, torch.bool):
        a, b = align._poisoned_like(torch.zeros(5, dtype=dtype)), align._poisoned_like(torch.zeros(5, dtype=dtype))
        assert a.dtype == dtype and torch.equal(a.isnan() if a.is_floating_point() or a.is_complex() else a,
                                                b.isnan() if b.is_floating_point() or b.is_complex() else b)
    assert align.compare([align._poisoned_like(torch.zeros(3))], [align._poisoned_like(torch.zeros(3))], None)[0]
