"""The PyTorch alignment harness: PyTorch's own OpInfo samples, run with the library off and on.

For every OpInfo in `op_db` and every dtype it supports among those asked for, each sample runs twice
in one process: first with stock ATen (the library registered but `bypassed()`: our kernels only count
the calls that reach them and hand each to ATen), then with the library serving (the integration's counters
record which of our wrappers ran and which declined). No Python dispatch mode is used to see what ran: with
one active, ATen's composite ops take their tensor-subclass paths, and some of those drop `out=`
(`linalg.matrix_rank(..., out=)` rebinds its result instead of writing it, leaving `out` uninitialised), so
the reference run would no longer be what users get. Each sample is then, per aten overload of ours it reached:

- PASS: our kernel ran (or raised) and the results (outputs, mutated inputs, or the exception type) match ATen's
  within atol = rtol = 1e-3 (PyTorch's `test_compare_cpu`), integers and bools exactly. Where a float
  result disagrees with ATen's, both are compared with a float64 run of the same sample: ours passes if
  it is as close to float64 as ATen's is (within the dtype's rounding) -- counted as `pass_vs_float64`,
  since then it is ATen's 16-bit CPU result that is the less accurate one;
- FAIL: our kernel ran and the results differ;
- FALLBACK: our wrappers were reached and declined, so ATen ran;
- NOT_HIT: the sample reached none of our overloads.

Variants: `sample` (sample_inputs), `reference` (reference_inputs), `noncontiguous`, `out` (out=),
`inplace`, `error` (error_inputs: the same exception type), `grad` (float32 gradients through autograd,
which exercises the backward aten ops).

`device="cuda"` makes the samples on the GPU and registers the library on the CUDA key: the same operator
sources, compiled by stock Triton for the GPU, judged against ATen's CUDA kernels. This module judges one
OpInfo; `align_run` runs many (split over processes, bounded in time, resumed) and is `tilebridge align`.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from tilebridge.integrations.torch import aten
from tilebridge.ops.registry import packet_of

OUTCOMES = ("PASS", "FAIL", "FALLBACK", "NOT_HIT")
VARIANTS = ("sample", "reference", "noncontiguous", "out", "inplace", "error", "grad")
DEFAULT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
                  torch.uint8, torch.bool)
ATOL = RTOL = 1e-3
# How far a 16-bit result may sit from float64 beyond ATen's own distance: one rounding of the dtype.
ROUNDING = {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def _nested() -> defaultdict:
    return defaultdict(lambda: defaultdict(Counter))


@dataclass
class Tally:
    """Counts of one harness run, by OpInfo, by overload and by dtype, and which OpInfos it got through."""

    by_op: dict = field(default_factory=_nested)
    by_overload: dict = field(default_factory=_nested)
    by_dtype: dict = field(default_factory=lambda: defaultdict(Counter))
    failures: list = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    planned: list = field(default_factory=list)   # OpInfo labels this run was to go through, in order
    done: list = field(default_factory=list)      # ... those it finished
    cut: list = field(default_factory=list)       # ... those stopped by a time limit (their finished samples count)
    fatal: list = field(default_factory=list)     # "label: error" where the device itself failed (the process stopped)

    @classmethod
    def from_json(cls, data: dict) -> Tally:
        """The tally back from `align_report.to_json` (to resume a run, or to add shards up)."""
        tally = cls(seconds=float(data.get("seconds", 0.0)), device=data.get("device", "cpu"))
        for name in ("planned", "done", "cut", "fatal", "failures"):
            getattr(tally, name).extend(data.get(name, []))
        for target, source in ((tally.by_op, data["by_op"]), (tally.by_overload, data["by_overload"])):
            for key, dtypes in source.items():
                for dtype, counts in dtypes.items():
                    target[key][dtype].update(counts)
        for dtype, counts in data["by_dtype"].items():
            tally.by_dtype[dtype].update(counts)
        return tally

    def absorb(self, other: Tally) -> None:
        """Add another part of the same run (a shard): counts add up, lists join, the wall time is the longest."""
        for target, source in ((self.by_op, other.by_op), (self.by_overload, other.by_overload)):
            for key, dtypes in source.items():
                for dtype, counts in dtypes.items():
                    target[key][dtype].update(counts)
        for dtype, counts in other.by_dtype.items():
            self.by_dtype[dtype].update(counts)
        for name in ("planned", "done", "cut", "fatal", "failures"):
            getattr(self, name).extend(getattr(other, name))
        self.seconds = max(self.seconds, other.seconds)

    def add(self, op: str, dtype: str, variant: str, outcome: str, overloads: dict[str, str], detail: str = "") -> None:
        self.by_op[op][dtype][outcome] += 1
        self.by_dtype[dtype][outcome] += 1
        for overload, result in overloads.items():
            self.by_overload[overload][dtype][result] += 1
        if detail == "pass_vs_float64":
            self.by_dtype[dtype]["pass_vs_float64"] += 1
            self.by_op[op][dtype]["pass_vs_float64"] += 1
        if outcome == "FAIL":
            self.failures.append({"op": op, "dtype": dtype, "variant": variant, "overloads": sorted(overloads),
                                  "detail": detail[:400]})

    def served_packets(self) -> tuple[list[str], list[str]]:
        """(aten ops with at least one PASS and no FAIL, aten ops with a FAIL), overloads grouped by op."""
        passes, fails = Counter(), Counter()
        for overload, dtypes in self.by_overload.items():
            for counts in dtypes.values():
                passes[packet_of(overload)] += counts["PASS"]
                fails[packet_of(overload)] += counts["FAIL"]
        clean = sorted(p for p in passes if passes[p] and not fails[p])
        return clean, sorted(p for p in fails if fails[p])


# --- running one computation ---------------------------------------------------------------------------------

def _clone(tree: Any) -> Any:
    return tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, tree)


@dataclass
class Outcome:
    result: Any = None            # outputs, then the inputs after the call (in-place effects show)
    error: type | None = None
    served: set = field(default_factory=set)
    declined: set = field(default_factory=set)
    raised: set = field(default_factory=set)   # our wrapper ran and raised (judged like a result)
    reached: set = field(default_factory=set)


def _run(fn: Any, library: bool, seed: int = 0) -> Outcome:
    """Run `fn()` once with the library on or off; the same seed both times, so random ops agree.

    Off, the library stays registered but bypassed, so its kernels record which of our overloads the call
    reached while ATen computes every result.
    """
    outcome = Outcome()
    counters = aten.COUNTERS
    for counter in counters.values():
        counter.clear()
    torch.manual_seed(seed)
    try:
        with warnings.catch_warnings(), (contextlib.nullcontext() if library else aten.bypassed()):
            warnings.simplefilter("ignore")
            outcome.result = fn()
    except Exception as error:  # noqa: BLE001 -- the exception's type is the result being compared
        outcome.error = type(error)
        outcome.result = error
    outcome.served, outcome.declined = set(counters["served"]), set(counters["declined"])
    outcome.raised, outcome.reached = set(counters["raised"]), set(counters["bypassed"])
    return outcome


def _tensors(tree: Any) -> list[torch.Tensor | Any]:
    return [leaf for leaf in tree_flatten(tree)[0] if isinstance(leaf, (torch.Tensor, int, float, bool))]


def _distance(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """|actual - expected| elementwise in float64, 0 where both are the same inf or both NaN."""
    a, e = actual.double(), expected.double()
    same = (a == e) | (torch.isnan(a) & torch.isnan(e))
    return torch.where(same, torch.zeros_like(a), (a - e).abs())


def compare(actual: Any, expected: Any, reference: Any | None) -> tuple[bool, str]:
    """(agrees, detail): ATen's tolerance first, then, for floats, the float64 judge."""
    got, want = _tensors(actual), _tensors(expected)
    if len(got) != len(want):
        return False, f"{len(got)} results, ATen gave {len(want)}"
    refs = _tensors(reference) if reference is not None else None
    verdict = ""
    for i, (a, e) in enumerate(zip(got, want)):
        if not isinstance(a, torch.Tensor) or not isinstance(e, torch.Tensor):
            if isinstance(a, torch.Tensor) or isinstance(e, torch.Tensor) or not (a == e or (a != a and e != e)):
                return False, f"result {i}: {a!r} != {e!r}"
            continue
        if a.shape != e.shape or a.dtype != e.dtype or a.layout != e.layout:
            return False, f"result {i}: {a.dtype}{list(a.shape)} {a.layout} != ATen's {e.dtype}{list(e.shape)} {e.layout}"
        if a.layout != torch.strided:  # sparse results (a dense op's sample may return them): compare their values
            a, e = a.to_dense(), e.to_dense()
        if not e.is_floating_point() and not e.is_complex():
            if not torch.equal(a, e):
                return False, f"result {i}: {int((a != e).sum())} of {e.numel()} elements differ"
            continue
        try:
            torch.testing.assert_close(a, e, atol=ATOL, rtol=RTOL, equal_nan=True)
            continue
        except AssertionError as error:
            message = str(error).split("\n")[:4]
        if refs is None or len(refs) != len(want) or not isinstance(refs[i], torch.Tensor) or refs[i].shape != e.shape:
            return False, f"result {i}: " + " ".join(message)
        r = refs[i].double()
        slack = ROUNDING.get(e.dtype, 2e-6) * (1 + r.abs().nan_to_num(nan=0.0))  # a NaN reference: no slack, not NaN
        if bool((_distance(a, r) <= _distance(e, r) + slack + ATOL * 1e-2).all()):
            verdict = "pass_vs_float64"
            continue
        return False, f"result {i}: " + " ".join(message) + " (and farther from float64 than ATen)"
    return True, verdict


def classify(off: Outcome, on: Outcome, reference: Outcome | None, ours: set[str]) -> tuple[str, dict[str, str], str]:
    """The sample's outcome, each reached overload's, and a detail string."""
    ran = on.served | on.raised
    reached = (off.reached & ours) | ran | on.declined
    if not reached:
        return "NOT_HIT", {}, ""
    if not ran:
        return "FALLBACK", {o: "FALLBACK" for o in reached}, ""
    if off.error is not None or on.error is not None:
        agrees = off.error is on.error
        detail = "" if agrees else f"exception {on.error and on.error.__name__} != ATen's {off.error and off.error.__name__}"
        if not agrees and isinstance(on.result, Exception):
            detail += f": {str(on.result)[:200]}"
        elif not agrees and isinstance(off.result, Exception):
            detail += f" ({str(off.result).splitlines()[0][:160] if str(off.result) else ''})"
    else:
        agrees, detail = compare(on.result, off.result, reference.result if reference and reference.error is None else None)
    result = "PASS" if agrees else "FAIL"
    overloads = {o: (result if o in ran else "FALLBACK" if o in on.declined else "NOT_HIT") for o in reached}
    return result, {o: r for o, r in overloads.items() if r != "NOT_HIT"}, detail


# --- samples per variant ------------------------------------------------------------------------------------

def _call(op: Any, sample: Any, **extra: Any) -> Any:
    sample = _clone(sample)
    output = op(sample.input, *sample.args, **sample.kwargs, **extra)
    return output, sample.input, sample.args


def _to_float64(sample: Any) -> Any:
    return sample.transform(lambda t: t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t)


def _poisoned_like(t: torch.Tensor) -> torch.Tensor:
    """An out= tensor like `t`, filled the same way on both runs: where an op leaves elements of `out`
    unwritten (ATen's fft.ihfftn does), both runs show the same value, not two different garbages."""
    fill = True if t.dtype == torch.bool else (float("nan") if t.is_floating_point() or t.is_complex() else 77)
    return torch.full_like(t, fill)


def _computations(op: Any, dtype: torch.dtype, variant: str, limit: int, device: str = "cpu"
                  ) -> Iterator[tuple[Any, Any | None]]:
    """(computation, float64 twin or None) for each sample of one variant."""
    def take(samples: Iterable[Any]) -> list[Any]:
        out = []
        for i, s in enumerate(samples):
            if i >= limit:
                break
            out.append(s)
        return out

    floating = dtype.is_floating_point
    if variant in ("sample", "reference", "noncontiguous"):
        source = op.reference_inputs if variant == "reference" else op.sample_inputs
        for s in take(source(device, dtype)):
            s = s.noncontiguous() if variant == "noncontiguous" else s
            yield (lambda s=s: _call(op, s)), ((lambda s=s: _call(op, _to_float64(s))) if floating else None)
    elif variant == "out" and op.supports_out:
        for s in take(op.sample_inputs(device, dtype)):
            def with_out(s: Any = s) -> Any:
                expected = _call(op, s)[0]
                out = tree_map(lambda t: _poisoned_like(t) if isinstance(t, torch.Tensor) else t, expected)
                if not isinstance(out, (torch.Tensor, tuple)):
                    raise TypeError("no tensor output")
                result = _call(op, s, out=out)
                return result, out

            def twin(s: Any = s) -> Any:
                result = _call(op, _to_float64(s))
                return result, result[0]
            yield with_out, (twin if floating else None)
    elif variant == "inplace" and op.inplace_variant is not None:
        for s in take(op.sample_inputs(device, dtype)):
            yield (lambda s=s: _call(op.inplace_variant, s)), None
    elif variant == "grad" and op.supports_autograd and dtype == torch.float32 and dtype in op.supported_backward_dtypes(device):
        # float32 only for now: 16-bit gradients pass through chains of rounded intermediates, where ATen's and
        # ours drift apart by a few ulps; judging them needs a per-chain tolerance not written yet.
        for s in take(op.sample_inputs(device, dtype, requires_grad=True)):
            yield (lambda s=s: _gradients(op, s)), (lambda s=s: _gradients(op, _to_float64(s)))


def _gradients(op: Any, sample: Any) -> Any:
    """Gradients of a seeded random projection of the outputs, with respect to every input that requires them."""
    sample = sample.transform(lambda t: t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t)
    output = op(sample.input, *sample.args, **sample.kwargs)
    output = sample.output_process_fn_grad(output)
    leaves = [t for t in tree_flatten((sample.input, sample.args, sample.kwargs))[0]
              if isinstance(t, torch.Tensor) and t.requires_grad]
    outputs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
    if not leaves or not outputs:
        raise TypeError("nothing to differentiate")
    generator = torch.Generator().manual_seed(1)
    weights = [torch.randn(t.shape, generator=generator, dtype=torch.float32).to(t.device, t.dtype) for t in outputs]
    grads = torch.autograd.grad(outputs, leaves, weights, allow_unused=True)
    return [g.detach() if g is not None else None for g in grads]


def _error_computations(op: Any, limit: int, device: str = "cpu") -> Iterator[tuple[Any, type]]:
    for i, error_input in enumerate(op.error_inputs(device)):
        if i >= limit:
            break
        yield (lambda e=error_input: _call(op, e.sample_input)), error_input.error_type


# --- one OpInfo ----------------------------------------------------------------------------------------------

class DeviceLost(Exception):
    """The device failed so that no later sample in this process can run (a sticky CUDA error)."""


def op_label(op: Any) -> str:
    """"nn.functional.silu", "max.reduction_with_dim": an OpInfo's name and variant, unique in op_db."""
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def op_dtypes(op: Any, dtypes: Iterable[torch.dtype], device: str = "cpu") -> list[torch.dtype]:
    supported = op.supported_dtypes(device)
    return [d for d in dtypes if d in supported]


def device_error(device: str) -> str | None:
    """The error a device reports now, if any: a CUDA fault is sticky, and every later call would fail."""
    if device == "cpu":
        return None
    try:
        getattr(torch, device).synchronize()
    except Exception as error:  # noqa: BLE001 -- reported, and the run stops
        return f"{type(error).__name__}: {error}"[:300]
    return None


def _run_one(op: Any, label: str, dtype: torch.dtype, variants: Iterable[str], limit: int, ours: set[str],
             tally: Tally, device: str = "cpu") -> None:
    dtype_name = str(dtype).removeprefix("torch.")
    for variant in variants:
        if variant == "error":
            continue
        try:
            computations = list(_computations(op, dtype, variant, limit, device))
        except Exception:  # noqa: BLE001 -- an OpInfo that cannot make samples for this dtype has nothing to compare
            continue
        for computation, twin in computations:
            off, on = _off_and_on(computation, label, dtype_name, variant, ours, tally, device)
            reference = _run(twin, library=False) if twin is not None and on.served else None
            with aten.bypassed():
                outcome, overloads, detail = classify(off, on, reference, ours)
            tally.add(label, dtype_name, variant, outcome, overloads, detail)


def _off_and_on(computation: Any, label: str, dtype_name: str, variant: str, ours: set[str], tally: Tally,
                device: str) -> tuple[Outcome, Outcome]:
    """The ATen run and the library run of one sample; DeviceLost when either leaves the device failed.

    A fault during the library run is that sample's FAIL, when the sample reached our kernels.
    """
    off = _run(computation, library=False)
    lost = device_error(device)
    if lost:
        raise DeviceLost(f"during ATen's run: {lost}")
    on = _run(computation, library=True)
    lost = device_error(device)
    if lost:
        reached = (off.reached & ours) | on.served | on.raised | on.declined
        if reached:
            tally.add(label, dtype_name, variant, "FAIL", {o: "FAIL" for o in reached}, f"device error: {lost}")
        raise DeviceLost(f"during the library's run: {lost}")
    return off, on


def _run_errors(op: Any, label: str, limit: int, ours: set[str], tally: Tally, device: str = "cpu") -> None:
    """error_inputs: the library must raise what ATen raises (the same exception type) or agree where ATen does not."""
    try:
        computations = list(_error_computations(op, limit, device))
    except Exception:  # noqa: BLE001
        return
    for computation, _ in computations:
        off, on = _off_and_on(computation, label, "error_inputs", "error", ours, tally, device)
        with aten.bypassed():
            outcome, overloads, detail = classify(off, on, None, ours)
        tally.add(label, "error_inputs", "error", outcome, overloads, detail)
