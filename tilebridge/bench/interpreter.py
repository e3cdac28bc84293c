"""How much faster than the Triton interpreter: the same kernels, the same small inputs, timed both ways.

The interpreter is the one other way to run a Triton kernel on a machine without a GPU, so it is the
baseline a user would otherwise have. It only works when `TRITON_INTERPRET=1` is set before triton
is imported (triton's `@jit` helpers such as `tl.sum` are built differently then), so it runs in a
subprocess: `python -m tilebridge.bench.interpreter RESULT.json KERNEL...` with `TILEBRIDGE_DEVICE=off`.
The subprocess writes its results after every kernel, so a timeout still leaves the finished ones.
Inputs are small (1 to 4 programs): the interpreter runs each block operation through numpy, and
its time per call is what matters, not its bandwidth.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

INTERPRETER_BUDGET_S = 1.0  # per kernel, after its first call; the first call alone may take longer
INTERPRETER_MAX_REPETITIONS = 5


@dataclass(frozen=True)
class InterpreterComparison:
    """One kernel on its small input: seconds per call under the interpreter and under tilebridge."""

    kernel: str
    shape: str
    elements: int
    interpreter_s: float | None
    tilebridge_s: float | None
    error: str | None = None
    note: str | None = None  # e.g. the numpy compatibility shim the interpreter subprocess needed

    @property
    def speedup(self) -> float | None:
        """interpreter time / tilebridge time: how many times faster tilebridge runs the same launch."""
        if self.interpreter_s is None or not self.tilebridge_s:
            return None
        return self.interpreter_s / self.tilebridge_s

    def as_dict(self) -> dict:
        per_element = {name: (getattr(self, f"{name}_s") / self.elements * 1e9 if getattr(self, f"{name}_s") else None)
                       for name in ("interpreter", "tilebridge")}
        return {**asdict(self), "interpreter_ns_per_element": per_element["interpreter"],
                "tilebridge_ns_per_element": per_element["tilebridge"], "speedup": self.speedup}


def _numpy_scalar_shim() -> str | None:
    """Let triton 3.6.0's interpreter run loops with runtime bounds under numpy >= 2.4; returns what it did.

    The interpreter keeps scalars as 1-element arrays and converts them with `int(array)`, which numpy
    2.4 turned into a TypeError, so every `for i in range(n)` with a runtime `n` fails
    (triton-lang/triton#9171, fixed upstream by squeezing the array first). This applies the same fix,
    only in this benchmark subprocess and only when this numpy needs it; the tilebridge side of the
    comparison never runs through it.
    """
    import numpy as np

    try:
        int(np.array([1]))
        return None
    except TypeError:
        pass
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor

    def patch_lang_tensor(tensor: type, scope: object) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    interpreter._patch_lang_tensor = patch_lang_tensor
    return f"numpy {np.__version__}: interpreter scalars squeezed before int() (triton-lang/triton#9171)"


def _interpret(kernels: list[str], result_path: Path) -> None:
    """Subprocess side: time each kernel's small workload under the interpreter."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("tilebridge.bench.interpreter must run with TRITON_INTERPRET=1 set before triton is imported")
    import triton  # noqa: F401 - imported here, after the check, so interpreter mode is on

    shim = _numpy_scalar_shim()
    from tilebridge.bench.cases import SMALL
    from tilebridge.bench.timing import time_once

    results: dict[str, dict] = {}
    for kernel in kernels:
        try:
            ours = SMALL[kernel][1]().ours
            first = time_once(ours)
            times, start = [], time.perf_counter()
            while len(times) < INTERPRETER_MAX_REPETITIONS and (not times or time.perf_counter() - start < INTERPRETER_BUDGET_S):
                times.append(time_once(ours))
            results[kernel] = {"seconds": sorted(times)[len(times) // 2], "first_call_s": first, "shim": shim}
        except Exception as error:  # noqa: BLE001 - recorded for the report, the other kernels still run
            results[kernel] = {"error": f"{type(error).__name__}: {error}"}
        result_path.write_text(json.dumps(results))


def run_interpreter(kernels: list[str], timeout_s: float | None = None) -> dict[str, dict]:
    """Parent side: run `_interpret` in a fresh interpreter; {kernel: {"seconds": s} or {"error": text}}."""
    timeout_s = timeout_s if timeout_s is not None else 30 + 8 * len(kernels)
    env = dict(os.environ, TRITON_INTERPRET="1", TILEBRIDGE_DEVICE="off")
    with tempfile.TemporaryDirectory(prefix="tilebridge-bench-") as tmp:
        result_path = Path(tmp) / "interpreter.json"
        failure = None
        try:
            done = subprocess.run([sys.executable, "-m", "tilebridge.bench.interpreter", str(result_path), *kernels],
                                  env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
            if done.returncode != 0:
                failure = f"interpreter subprocess exited with {done.returncode}: {done.stderr.strip()[-2000:]}"
        except subprocess.TimeoutExpired:
            failure = f"interpreter subprocess timed out after {timeout_s:.0f} s"
        results = json.loads(result_path.read_text()) if result_path.exists() else {}
    for kernel in kernels:
        results.setdefault(kernel, {"error": failure or "no result"})
    return results


def compare_with_interpreter(kernels: list[str], quick: bool = False) -> list[InterpreterComparison]:
    """Time each kernel's small workload under the interpreter (subprocess) and under tilebridge (here)."""
    from tilebridge.bench.cases import SMALL
    from tilebridge.bench.timing import TimingPolicy, median_time

    interpreted = run_interpreter(kernels)
    # two warm-ups: a small input is often a new specialization, so the first call compiles, and a
    # repetition count sized on it would leave five samples (one slow launch could be their median)
    policy = TimingPolicy(budget_s=0.05 if quick else 0.3, min_repetitions=5, warmups=2)
    comparisons = []
    for kernel in kernels:
        shape, build = SMALL[kernel]
        result = interpreted[kernel]
        try:
            workload = build()
            ours = median_time(workload.ours, policy)
        except Exception as error:  # noqa: BLE001 - a compile failure is reported in the main table too
            comparisons.append(InterpreterComparison(kernel, shape, 0, result.get("seconds"), None,
                                                     f"tilebridge: {type(error).__name__}: {error}", result.get("shim")))
            continue
        comparisons.append(InterpreterComparison(kernel, shape, workload.elements, result.get("seconds"), ours,
                                                 result.get("error"), result.get("shim")))
    return comparisons


if __name__ == "__main__":
    _interpret(sys.argv[2:], Path(sys.argv[1]))
