"""One run of the benchmark suite: measure the machine, then check and time every case, then the interpreter.

Everything a report needs comes from the same process and the same minutes, so the ratios to
PyTorch and the fractions of the roofline are comparable with each other. A case that fails to
compile, to run or to match PyTorch becomes a FAILED row carrying the exact error text; the suite
goes on, because one broken kernel in a compiler under development should not hide the rest.
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from tilebridge.bench.cases import MEMORY, SMALL, Case, Workload, all_cases, kernel_names
from tilebridge.bench.interpreter import InterpreterComparison, compare_with_interpreter
from tilebridge.bench.roofline import Machine, copy_moving, measure_machine
from tilebridge.bench.scaling import Scaling, measure_scaling, scaling_cases
from tilebridge.bench.startup import Startup, measure_startup
from tilebridge.bench.timing import FULL, QUICK, SCALING, OtherLoad, TimingPolicy, interleaved_timings


@dataclass
class CaseResult:
    """One case's outcome. Times are medians in seconds; `status` is "ok" or "failed" (then `error` says why)."""

    name: str
    kernel: str
    shape: str
    bound: str
    status: str
    error: str | None = None
    correct: bool | None = None  # None: never checked, because it failed to build, compile or run
    bytes: int = 0
    flops: int = 0
    max_abs_error: float | None = None
    first_call_s: float | None = None
    tilebridge_s: float | None = None
    torch_s: float | None = None
    repetitions: int = 0
    roofline_s: float | None = None
    tilebridge_best_s: float | None = None  # the fastest repetition: far below the median means a noisy run
    torch_best_s: float | None = None
    given_output_s: float | None = None  # tilebridge writing into outputs made once (cases that allocate per call)

    @property
    def kernel_s(self) -> float | None:
        """The time the roofline fraction judges: without the page faults of fresh outputs where that was timed."""
        return self.given_output_s or self.tilebridge_s

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def ratio(self) -> float | None:
        """torch time / tilebridge time: above 1 means tilebridge is faster than PyTorch eager."""
        return self.torch_s / self.tilebridge_s if self.ok and self.tilebridge_s else None

    @property
    def achieved(self) -> float | None:
        """GB/s for memory-bound cases, GFLOP/s for compute-bound ones (the unit is `achieved_unit`)."""
        if not self.ok or not self.kernel_s:
            return None
        return (self.bytes if self.bound == MEMORY else self.flops) / self.kernel_s / 1e9

    @property
    def achieved_unit(self) -> str:
        return "GB/s" if self.bound == MEMORY else "GFLOP/s"

    @property
    def roofline_fraction(self) -> float | None:
        """roofline time / tilebridge time: 1.0 would be the machine's measured limit."""
        return self.roofline_s / self.kernel_s if self.ok and self.roofline_s and self.kernel_s else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "kernel_s": self.kernel_s, "achieved": self.achieved,
                "achieved_unit": self.achieved_unit, "roofline_fraction": self.roofline_fraction}


@dataclass
class SuiteResult:
    """Everything one run measured, plus how it was run."""

    machine: Machine
    cases: list[CaseResult]
    interpreter: list[InterpreterComparison]
    mode: str
    command: str
    started: str
    total_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    load_average: dict[str, list[float]] = field(default_factory=dict)
    other_load_cores: float | None = None  # cores other processes kept busy during the run (see OtherLoad)
    startup: Startup | None = None  # launch overhead, cold compile, new process (None: not measured)
    scaling: list[Scaling] = field(default_factory=list)  # compute-bound cases at one thread and at all of them

    @property
    def busy_machine(self) -> bool:
        """Whether neighbours used over a quarter of a core on average: medians then include waits for a core."""
        return self.other_load_cores is not None and self.other_load_cores > 0.25

    def geomean_ratio(self, bound: str | None = MEMORY) -> float | None:
        """Geometric mean of torch/tilebridge over the passing cases of one bound (None: all of them)."""
        ratios = [c.ratio for c in self.cases if c.ratio and (bound is None or c.bound == bound)]
        return math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if not c.ok]

    @property
    def slower_than_torch(self) -> list[CaseResult]:
        return [c for c in self.cases if c.ratio is not None and c.ratio < 1.0]

    def as_dict(self) -> dict[str, Any]:
        bounds = sorted({c.bound for c in self.cases})
        return {
            "mode": self.mode, "command": self.command, "started": self.started, "total_s": self.total_s,
            "versions": self.versions, "load_average": self.load_average, "other_load_cores": self.other_load_cores,
            "busy_machine": self.busy_machine, "machine": self.machine.as_dict(),
            "cases": [c.as_dict() for c in self.cases],
            "interpreter": [c.as_dict() for c in self.interpreter],
            "startup": self.startup.as_dict() if self.startup else None,
            "scaling": [s.as_dict() for s in self.scaling],
            "summary": {
                "cases": len(self.cases), "passed": sum(c.ok for c in self.cases), "failed": [c.name for c in self.failed],
                "all_correct": not self.failed,
                "geomean_ratio": {bound: self.geomean_ratio(bound) for bound in bounds} | {"all": self.geomean_ratio(None)},
                "slower_than_torch": [c.name for c in self.slower_than_torch],
            },
        }


def select_cases(cases: Sequence[Case], only: Sequence[str] | None) -> list[Case]:
    """The cases `--only` names: a kernel family (e.g. `softmax`) or one full case name (e.g. `matmul 1000x1000x1000`)."""
    if not only:
        return list(cases)
    known_names = {c.name for c in cases} | set(kernel_names())
    unknown = [name for name in only if name not in known_names]
    if unknown:
        raise ValueError(f"unknown case or kernel {', '.join(map(repr, unknown))}; kernels: {', '.join(kernel_names())}")
    return [c for c in cases if c.kernel in only or c.name in only]


def _compare(ours: Any, expected: Any, tolerance: dict[str, float]) -> float:
    """assert_close on a tensor or a tuple of them; returns the largest absolute error."""
    pairs = list(zip(ours, expected)) if isinstance(ours, (tuple, list)) else [(ours, expected)]
    worst = 0.0
    for mine, theirs in pairs:
        theirs = theirs.to(mine.dtype)
        torch.testing.assert_close(mine, theirs, **tolerance)
        if mine.numel():
            worst = max(worst, (mine.double() - theirs.double()).abs().max().item())
    return worst


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


def error_summary(error: str | None, width: int = 160) -> str:
    """One line for a table cell: the error's first line, and its last one when they differ.

    Triton's compilation errors start with the kernel source excerpt and end with the message, and
    assert_close puts the mismatch count after a first line that only says "not close", so one line
    alone would often hide the reason; the full text stays in the JSON and the Markdown.
    """
    lines = [line.strip() for line in (error or "unknown error").splitlines() if line.strip()]
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return text if len(text) <= width else text[: width - 3] + "..."


def run_case(case: Case, machine: Machine, policy: TimingPolicy = FULL) -> CaseResult:
    """Build, check once against PyTorch, then time tilebridge and PyTorch interleaved.

    A memory-bound case times a copy of its own byte count in the same rounds (its roofline), and
    its kernel writing into given outputs where both sides allocate theirs (`Workload.given_output`).
    """
    result = CaseResult(case.name, case.kernel, case.shape, case.bound, status="failed")
    try:
        workload: Workload = case.setup()
    except Exception as error:  # noqa: BLE001 - a case that cannot even build its inputs is reported, not fatal
        result.error = f"setup: {_error_text(error)}"
        return result
    result.bytes, result.flops = workload.bytes, workload.flops
    result.roofline_s = machine.roofline_s(case.bound, workload.bytes, workload.flops)
    try:
        start = time.perf_counter()
        ours = workload.ours()
        result.first_call_s = time.perf_counter() - start  # includes compiling, or loading from the caches
    except Exception as error:  # noqa: BLE001 - compile or launch failure: keep the exact text for the report
        result.error = _error_text(error)
        return result
    try:
        expected = (workload.expected or workload.reference)()
        result.max_abs_error = _compare(ours, expected, workload.tolerance)
    except AssertionError as error:
        result.error, result.correct = f"wrong result: {error}".strip(), False
        return result
    if workload.given_output:
        try:
            _compare(workload.given_output(), expected, workload.tolerance)
        except AssertionError as error:
            result.error, result.correct = f"wrong result writing into given outputs: {error}".strip(), False
            return result
        except Exception as error:  # noqa: BLE001 - as for the first call
            result.error = f"writing into given outputs: {_error_text(error)}"
            return result
    result.correct = True
    del ours, expected
    extra = {"given": workload.given_output} if workload.given_output else {}
    try:
        if case.bound == MEMORY:  # the copy's buffers are made here: running out of memory fails this case only
            extra["copy"] = copy_moving(workload.bytes)
        timings, result.repetitions = interleaved_timings([workload.ours, workload.reference, *extra.values()], policy)
    except Exception as error:  # noqa: BLE001 - e.g. a later launch running out of memory
        result.error = f"timing: {_error_text(error)}"
        return result
    ours_timing, torch_timing, *rest = timings
    measured = dict(zip(extra, rest))
    result.tilebridge_s, result.torch_s = ours_timing.median, torch_timing.median
    result.tilebridge_best_s, result.torch_best_s = ours_timing.best, torch_timing.best
    if "given" in measured:
        result.given_output_s = measured["given"].median
    if "copy" in measured:
        result.roofline_s = measured["copy"].median
    result.status = "ok"
    return result


def _versions() -> dict[str, str]:
    import triton

    import tilebridge

    return {"tilebridge": tilebridge.__version__, "triton": triton.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def run_suite(quick: bool = False, only: Sequence[str] | None = None, interpreter: bool = True, command: str = "",
              progress: Any = None) -> SuiteResult:
    """Measure the machine, run the selected cases, compare with the interpreter; `progress(line)` sees each case."""
    started = time.perf_counter()
    cases = select_cases(all_cases(quick), only)
    say = progress or (lambda line: None)
    load_start, other_load = _load_average(), OtherLoad()
    say("measuring the machine: copy bandwidth and sgemm rate ...")
    machine = measure_machine(quick)
    say(f"  copy {machine.copy_bandwidth_gbs:.1f} GB/s, sgemm {machine.sgemm_gflops:.1f} GFLOP/s "
        f"({machine.cores} cores, {machine.torch_threads} torch threads)")
    results = []
    for case in cases:
        case_start = time.perf_counter()
        result = run_case(case, machine, QUICK if quick else FULL)
        results.append(result)
        outcome = f"torch/tilebridge {result.ratio:.2f}x" if result.ok else f"FAILED: {error_summary(result.error, 200)}"
        say(f"  {case.name:<38} {outcome}  ({time.perf_counter() - case_start:.1f} s)")
    scaled = scaling_cases(cases, quick) if machine.torch_threads > 1 else []
    if scaled:
        say(f"timing {len(scaled)} compute-bound cases at 1 and {machine.torch_threads} threads ...")
    scaling = measure_scaling(scaled, QUICK if quick else SCALING)
    comparisons = []
    if interpreter:
        kernels = [k for k in dict.fromkeys(c.kernel for c in cases) if k in SMALL]  # Triton kernels only
        say(f"timing the Triton interpreter on small inputs ({len(kernels)} kernels, in a subprocess) ...")
        comparisons = compare_with_interpreter(kernels, quick)
    say("timing launch overhead, cold compiles and a new process's first launch (in subprocesses) ...")
    startup = measure_startup()
    return SuiteResult(machine, results, comparisons, "quick" if quick else "full", command,
                       datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       time.perf_counter() - started, _versions(), {"start": load_start, "end": _load_average()},
                       other_load.cores(), startup, scaling)
