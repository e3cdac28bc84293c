"""The operator library against ATen, one aten op at a time, at sizes real models use.

For each case the same torch call runs with the library off (ATen's own CPU kernel) and on
(`use_ops(include=[op])`, so only that op changes hands), alternately, and the medians are compared.
A case whose op the library did not serve (it declined, or composed differently) is marked so: its
ratio would compare ATen with itself. The figures say which operators earn their place by default and
which lose to ATen (usually to MKL/oneDNN, or to the 10-20 us a Python-dispatched call costs on
small tensors); `docs/operator-performance.md` records them.
"""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tilebridge.integrations.torch import COUNTERS, use_ops


@dataclass(frozen=True)
class OperatorCase:
    op: str                          # the aten op the library serves ("addmm")
    shape: str                       # what the inputs are, for the report
    make: Callable[[], Callable[[], Any]]  # builds inputs once, returns the call to time


def _g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _randn(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_g()).to(dtype)


def _call(fn: Callable, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: fn(*args, **kwargs)


ROWS = (4096, 1024)
ELEMENTS = 1 << 22

CASES = [
    OperatorCase("add", f"{ELEMENTS} + {ELEMENTS}", lambda: _call(torch.add, _randn(ELEMENTS), _randn(ELEMENTS))),
    OperatorCase("mul", f"{ELEMENTS} * scalar", lambda: _call(torch.mul, _randn(ELEMENTS), 1.5)),
    OperatorCase("exp", f"{ELEMENTS}", lambda: _call(torch.exp, _randn(ELEMENTS))),
    OperatorCase("sigmoid", f"{ELEMENTS}", lambda: _call(torch.sigmoid, _randn(ELEMENTS))),
    OperatorCase("gelu", f"{ELEMENTS}", lambda: _call(F.gelu, _randn(ELEMENTS))),
    OperatorCase("silu", f"{ELEMENTS}", lambda: _call(F.silu, _randn(ELEMENTS))),
    OperatorCase("where", f"{ELEMENTS}", lambda: _call(torch.where, _randn(ELEMENTS) > 0, _randn(ELEMENTS), 0.0)),
    OperatorCase("sum", "4096x1024, last dim", lambda: _call(torch.sum, _randn(*ROWS), -1)),
    OperatorCase("amax", "4096x1024, last dim", lambda: _call(torch.amax, _randn(*ROWS), -1)),
    OperatorCase("mean", "4096x1024, first dim", lambda: _call(torch.mean, _randn(*ROWS), 0)),
    OperatorCase("_softmax", "4096x1024, last dim", lambda: _call(torch.softmax, _randn(*ROWS), -1)),
    OperatorCase("_log_softmax", "4096x1024, last dim", lambda: _call(torch.log_softmax, _randn(*ROWS), -1)),
    OperatorCase("native_layer_norm", "4096x1024", lambda: _call(F.layer_norm, _randn(*ROWS), (1024,), _randn(1024),
                                                                 _randn(1024))),
    OperatorCase("cumsum", "4096x1024, last dim", lambda: _call(torch.cumsum, _randn(*ROWS), -1)),
    OperatorCase("mm", "1024x1024 @ 1024x1024", lambda: _call(torch.mm, _randn(1024, 1024), _randn(1024, 1024))),
    OperatorCase("addmm", "linear 2048x1024 -> 1024", lambda: _call(F.linear, _randn(2048, 1024), _randn(1024, 1024),
                                                                    _randn(1024))),
    OperatorCase("bmm", "32 x 256x64 @ 64x256", lambda: _call(torch.bmm, _randn(32, 256, 64), _randn(32, 64, 256))),
    OperatorCase("_scaled_dot_product_flash_attention_for_cpu", "4x8x512x64",
                 lambda: _call(F.scaled_dot_product_attention, _randn(4, 8, 512, 64), _randn(4, 8, 512, 64),
                               _randn(4, 8, 512, 64), is_causal=True)),
    OperatorCase("embedding", "32000x512 table, 8192 ids",
                 lambda: _call(F.embedding, torch.randint(0, 32000, (8192,), generator=_g()), _randn(32000, 512))),
    OperatorCase("nll_loss_forward", "cross-entropy 1024x8192",
                 lambda: _call(F.nll_loss, torch.log_softmax(_randn(1024, 8192), -1),
                               torch.randint(0, 8192, (1024,), generator=_g()))),
    OperatorCase("cat", "4 x 1024x1024, dim 1", lambda: _call(torch.cat, [_randn(1024, 1024) for _ in range(4)], 1)),
    OperatorCase("index_select", "32000x512, 8192 rows",
                 lambda: _call(torch.index_select, _randn(32000, 512), 0, torch.randint(0, 32000, (8192,), generator=_g()))),
    OperatorCase("native_group_norm", "32x256x32x32, 32 groups",
                 lambda: _call(F.group_norm, _randn(32, 256, 32, 32), 32, _randn(256), _randn(256))),
    OperatorCase("topk", "1024x32000, k=8", lambda: _call(torch.topk, _randn(1024, 32000), 8)),
    OperatorCase("convolution", "conv2d 8x64x56x56, 64 3x3 filters, padding 1",
                 lambda: _call(F.conv2d, _randn(8, 64, 56, 56), _randn(64, 64, 3, 3), _randn(64), padding=1)),
]


@dataclass
class OperatorResult:
    op: str
    shape: str
    aten_s: float | None = None
    tilebridge_s: float | None = None
    served: bool = False
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        """ATen time / library time: above 1 the library is faster."""
        return self.aten_s / self.tilebridge_s if self.served and self.aten_s and self.tilebridge_s else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _served(op: str) -> int:
    return sum(count for overload, count in COUNTERS["served"].items() if overload.split(".")[0] == op)


MAX_REPETITIONS = 400


def measure(case: OperatorCase, repetitions: int = 7, budget_s: float = 0.0) -> OperatorResult:
    """Alternate ATen and the library on the same inputs; medians of at least `repetitions` timed calls
    each, and of as many more as fit in `budget_s` (up to MAX_REPETITIONS): on a shared machine seven
    calls left ratios that swung by 2x between runs."""
    result = OperatorResult(case.op, case.shape)
    try:
        call = case.make()
        call()
        before = _served(case.op)
        with use_ops(include=[case.op]):
            call()
        result.served = _served(case.op) > before
        aten, ours = [], []
        deadline = time.perf_counter() + budget_s
        # Registering and unregistering the op around each library call leaves garbage whose full
        # collections then land inside timed calls (group norm: 18-34 ms medians against 4.5 with the
        # collector off, ATen 11.6-13): the collector waits until the loop is over.
        gc.collect()
        gc.disable()
        try:
            while len(aten) < repetitions or (time.perf_counter() < deadline and len(aten) < MAX_REPETITIONS):
                start = time.perf_counter()
                call()
                aten.append(time.perf_counter() - start)
                with use_ops(include=[case.op]):
                    start = time.perf_counter()
                    call()
                    ours.append(time.perf_counter() - start)
        finally:
            gc.enable()
        result.aten_s, result.tilebridge_s = statistics.median(aten), statistics.median(ours)
    except Exception as error:  # noqa: BLE001 - one failing op is a row with its error, not the end of the run
        result.error = f"{type(error).__name__}: {error}"[:300]
    return result


def run(cases: list[OperatorCase] | None = None, repetitions: int = 7, progress: Callable[[str], None] | None = None,
        budget_s: float = 0.0) -> list[OperatorResult]:
    """Every case (default: `CASES`), one after another."""
    results = []
    for case in cases or CASES:
        result = measure(case, repetitions, budget_s)
        results.append(result)
        if progress:
            ratio = f"{result.ratio:.2f}x" if result.ratio else ("not served" if not result.error else result.error)
            progress(f"  {case.op:<44} {case.shape:<28} {ratio}")
    return results


def markdown(results: list[OperatorResult], command: str, machine: str, budget_s: float = 2.0) -> str:
    """The report: one row per case, then which ops lose to ATen at these sizes."""
    lines = ["# The operator library against ATen, per operator", "",
             "Generated by `" + command + "`; " + machine + ". Each row times the same torch call with the library off "
             "(ATen) and on for that op only, alternately, medians of the timed calls (at least 7 each, as many as "
             f"{budget_s:g} s allow; Python's garbage collector paused while they run). `ATen/tilebridge` above 1 "
             "means the library's Triton kernel is faster. Sizes are those of a mid-sized transformer layer; the "
             "library pays 20-30 us of Python per call, which decides small tensors.", "",
             "| op | inputs | ATen | tilebridge | ATen/tilebridge |", "|---|---|---|---|---|"]
    for r in results:
        ratio = f"{r.ratio:.2f}x" if r.ratio else ("error: " + r.error if r.error else "not served")
        times = [f"{s * 1e3:.3g} ms" if s else "-" for s in (r.aten_s, r.tilebridge_s)]
        lines.append(f"| `{r.op}` | {r.shape} | {times[0]} | {times[1]} | {ratio} |")
    slower = [r for r in results if r.ratio is not None and r.ratio < 1.0]
    lines += ["", "Slower than ATen at these sizes: " + (", ".join(f"`{r.op}` ({r.ratio:.2f}x)" for r in slower)
                                                       if slower else "none") + ".", ""]
    return "\n".join(lines)


def main(json_path: str | None = None, markdown_path: str | None = None, repetitions: int = 7, budget_s: float = 2.0) -> int:
    """`tilebridge bench --operators`: run, print, write the reports; 1 if a case failed."""
    import json
    import platform

    from tilebridge.runtime.device import cpu_info

    print(f"operators against ATen ({torch.get_num_threads()} threads):", flush=True)
    results = run(repetitions=repetitions, progress=lambda line: print(line, flush=True), budget_s=budget_s)
    machine = f"{cpu_info().model} ({platform.machine()}), {torch.get_num_threads()} threads, torch {torch.__version__}"
    command = "tilebridge bench --operators" + (f" --markdown {markdown_path}" if markdown_path else "")
    if json_path:
        with open(json_path, "w") as f:
            json.dump([r.as_dict() for r in results], f, indent=1)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(markdown(results, command, machine, budget_s))
    return 1 if any(r.error for r in results) else 0
