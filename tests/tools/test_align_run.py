"""Splitting, bounding, resuming and adding up alignment runs; the portability section.

Most of it on plain data (fake OpInfos, hand-made tallies); the end-to-end checks run one cheap OpInfo
(`abs`, float32, one sample) on the CPU, and one run is stopped by SIGTERM in a subprocess.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch

from tilebridge.tools import align, align_report, align_run
from tilebridge.tools.align_run import OutOfTime, Schedule, plan, time_limit

ENVIRONMENT = {"torch": "2.11.0+cu130", "triton": "3.6.0", "machine": "x86_64", "device": "cuda",
               "device_name": "NVIDIA H200", "registered_overloads": 500, "registered_ops": 200,
               "registered_on_device": 450, "unavailable_modules": {}}


def _ops(*labels: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(name=label.split(".")[0], variant_test_name=label.partition(".")[2]) for label in labels]


def test_plan_orders_then_shards_every_opinfo_once():
    ops = _ops("abs", "add", "max.reduction_with_dim", "max.binary", "sum", "where", "exp")
    first = ["sum", "max.binary", "not_in_op_db"]
    parts = [plan(ops, None, Schedule(shard=(i, 3), first=first)) for i in range(3)]
    labels = [align.op_label(op) for part in parts for op in part]
    assert sorted(labels) == sorted(align.op_label(op) for op in ops)
    assert [align.op_label(op) for op in parts[0]] == ["sum", "add", "exp"]  # sum, max.binary first; then op_db order
    assert [align.op_label(op) for op in plan(ops, ["max"], Schedule())] == ["max.reduction_with_dim", "max.binary"]
    assert [align.op_label(op) for op in plan(ops, ["max.binary", "exp"], Schedule())] == ["max.binary", "exp"]
    with pytest.raises(ValueError):
        plan(ops, None, Schedule(shard=(3, 3)))


def _tally(op: str, outcome: str, overload: str = "exp", device: str = "cuda") -> align.Tally:
    tally = align.Tally(device=device, planned=[op], done=[op], seconds=2.0)
    tally.add(op, "float32", "sample", outcome, {overload: outcome}, "result 0: 3 of 20 elements differ")
    return tally


def test_tally_survives_json_and_parts_add_up(tmp_path):
    one, two = _tally("exp", "PASS"), _tally("exp2", "FAIL", "exp2")
    two.cut, two.seconds = ["log"], 5.0
    data = align_report.to_json(one, "tilebridge align --shard 0/2 --json a.json --deadline 17", ENVIRONMENT)
    again = align.Tally.from_json(json.loads(json.dumps(data)))
    assert again.by_overload["exp"]["float32"]["PASS"] == 1 and again.done == ["exp"] and again.device == "cuda"
    parts = [data, align_report.to_json(two, "tilebridge align --shard 1/2 --json b.json --deadline 17", ENVIRONMENT)]
    merged = align_report.merge(parts, str(tmp_path / "m.json"), str(tmp_path / "m.md"))
    assert merged["command"] == "tilebridge align --shard i/2" and merged["parts"] == 2
    assert merged["by_dtype"]["float32"] == {"PASS": 1, "FAIL": 1}
    assert merged["served_ops_without_fail"] == ["exp"] and merged["ops_with_fail"] == ["exp2"]
    assert merged["done"] == ["exp", "exp2"] and merged["cut"] == ["log"] and merged["seconds"] == 5.0
    assert merged["torch"] == "2.11.0+cu130"  # the parts' machine, not this one
    assert json.loads((tmp_path / "m.json").read_text()) == merged
    assert "## CUDA portability" in (tmp_path / "m.md").read_text()


def test_portability_section_is_replaced_and_kept_by_a_cpu_report(tmp_path):
    cuda = align_report.to_json(_tally("exp", "FAIL"), "tilebridge align --device cuda", ENVIRONMENT)
    cpu = align_report.to_json(_tally("exp", "PASS", device="cpu"), "tilebridge align", {**ENVIRONMENT, "device": "cpu"})
    section = align_report.portability(cuda, cpu)
    assert "0 distinct aten ops served on CUDA with 0 FAIL" in section and "with a FAIL here: `exp`" in section
    assert "result #: # of # elements differ | 1 | exp float32" in section
    report = tmp_path / "report.md"
    align_report._write(cpu, None, str(report))
    align_report.put_section(str(report), section)
    align_report.put_section(str(report), section.replace("NVIDIA H200", "NVIDIA H100"))
    text = report.read_text()
    assert text.count("## CUDA portability") == 1 and "H100" in text and "H200" not in text
    align_report._write(cpu, None, str(report))  # a new CPU report keeps the section
    assert report.read_text().count("## CUDA portability") == 1 and report.read_text().startswith("# PyTorch alignment")


def test_time_limit_interrupts_and_then_lets_go():
    start = time.monotonic()
    with pytest.raises(OutOfTime), time_limit(0.05):
        while time.monotonic() - start < 5:
            pass
    assert time.monotonic() - start < 1
    with time_limit(None):
        pass
    time.sleep(0.1)  # the alarm is off: nothing fires now


def test_raised_wrapper_is_judged_like_a_result():
    off = align.Outcome(result=(torch.tensor([1.0]),), reached={"exp"})
    raised = align.Outcome(result=RuntimeError("no kernel"), error=RuntimeError, raised={"exp"})
    assert align.classify(off, raised, None, {"exp"})[:2] == ("FAIL", {"exp": "FAIL"})
    both = align.Outcome(result=IndexError("out of range"), error=IndexError, reached={"exp"})
    assert align.classify(both, align.Outcome(result=IndexError(), error=IndexError, raised={"exp"}), None, {"exp"})[0] == "PASS"


def test_run_checkpoints_resumes_and_stops_on_a_failed_device(monkeypatch):
    seen = []
    schedule = Schedule(checkpoint=lambda t: seen.append(list(t.done)))
    tally = align_run.run(["abs"], dtypes=(torch.float32,), variants=("sample",), limit=1, schedule=schedule)
    assert tally.done == ["abs"] and tally.by_dtype["float32"]["PASS"] == 1 and seen == [["abs"]]
    resumed = align_run.run(["abs"], dtypes=(torch.float32,), variants=("sample",), limit=1,
                            schedule=Schedule(skip=tally.done), tally=tally)
    assert resumed.done == ["abs"] and resumed.by_dtype["float32"]["PASS"] == 1  # nothing ran twice
    assert align_run.run(["abs"], schedule=Schedule(budget=0.0)).done == []

    monkeypatch.setattr(align, "device_error", lambda device: "AcceleratorError: illegal memory access")
    lost = align_run.run(["abs", "neg"], dtypes=(torch.float32,), variants=("sample",), limit=1)
    assert lost.fatal == [{"op": "abs", "error": "during ATen's run: AcceleratorError: illegal memory access"}]
    assert lost.done == [] and lost.planned == ["abs", "neg"]


def test_sigterm_keeps_what_finished(tmp_path):
    out = tmp_path / "part.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "tilebridge", "align", "--ops", "abs,neg,exp,sin,cos,tan,erf",
                                "--dtypes", "float32", "--variants", "sample", "--limit", "1", "--json", str(out),
                                "--progress"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    finally:
        process.kill()
    data = json.loads(out.read_text())
    assert process.returncode in (0, 2), output  # handled: not killed by the signal (-15)
    assert data["done"] and data["by_dtype"]["float32"]["PASS"] >= 1, output
    assert len(data["done"]) < len(data["planned"]) == 7, output  # stopped early, with what finished written


def test_cli_resumes_a_part_and_merges_parts_into_the_report(tmp_path):
    from tilebridge.tools.cli import main

    part = tmp_path / "part.json"
    earlier = align_report.to_json(_tally("abs", "PASS", "abs", device="cpu"), "tilebridge align --shard 0/1",
                                   {**ENVIRONMENT, "device": "cpu"})
    part.write_text(json.dumps({**earlier, "fatal": [{"op": "neg", "error": "device error"}]}))
    common = ["align", "--ops", "abs,neg", "--dtypes", "float32", "--variants", "sample", "--limit", "1"]
    assert main([*common, "--json", str(part), "--resume"]) == 3  # the earlier device failure is still reported
    resumed = json.loads(part.read_text())
    assert resumed["done"] == ["abs"] and resumed["by_dtype"]["float32"] == {"PASS": 1}  # abs, neg not run again
    report = tmp_path / "report.md"
    report.write_text("# PyTorch alignment\n\nthe CPU report\n")
    cuda = tmp_path / "cuda.json"
    cuda.write_text(json.dumps(align_report.to_json(_tally("exp", "PASS"), "tilebridge align --device cuda", ENVIRONMENT)))
    assert main(["align", "--merge", str(cuda), "--json", str(tmp_path / "all.json"), "--portability", str(report)]) == 0
    assert report.read_text().startswith("# PyTorch alignment\n\nthe CPU report\n\n<!-- portability:cuda -->")
