"""Running the alignment harness: which OpInfos a process takes, for how long, and `tilebridge align` itself.

A run can be split over processes (`Schedule.shard`: Triton's compiles, the cost on a GPU, spread over
the cores; its disk cache is safe to share), ordered (`first`: the OpInfos that reached the library in an
earlier run), bounded in time (`budget`, `op_timeout`; SIGTERM too) and resumed. What finished is kept:
the JSON is written after every OpInfo, the OpInfo cut short is named, and `tilebridge align --merge`
adds the parts up (`align_report.merge`). A device that fails for good mid-run (a sticky CUDA error)
ends the process with exit status 3; `--resume` continues after the OpInfo it failed in.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tilebridge.integrations.torch import aten
from tilebridge.tools.align import (
    DEFAULT_DTYPES,
    OUTCOMES,
    VARIANTS,
    DeviceLost,
    Tally,
    _run_errors,
    _run_one,
    op_dtypes,
    op_label,
)


class OutOfTime(BaseException):
    """An OpInfo ran past its time (SIGALRM), or the process was told to stop (SIGTERM; `final`).

    A BaseException, so that the harness's `except Exception` (there, an exception is a result to compare)
    lets it through to the loop over OpInfos, which keeps what finished and names the OpInfo cut short.
    """

    def __init__(self, final: bool = False):
        super().__init__("terminated" if final else "time limit")
        self.final = final


@dataclass
class Schedule:
    """Which OpInfos one process runs, in which order, and for how long.

    `shard=(i, n)`: after ordering, this process takes every n-th OpInfo from the i-th, so n processes share
    a run (Triton's compiles, the cost on a GPU, then spread over n cores; its disk cache is safe to share).
    `first`: OpInfo labels to run before the others, e.g. those an earlier run saw reach the library.
    `skip`: labels already done (a resumed run). `budget`: seconds after which no OpInfo starts and the
    running one is cut; `op_timeout`: seconds one OpInfo (all its dtypes) may take. `checkpoint` is called
    with the tally after every OpInfo, so a process killed at a deadline still leaves its results.
    """

    shard: tuple[int, int] = (0, 1)
    first: Sequence[str] = ()
    skip: Collection[str] = ()
    budget: float | None = None
    op_timeout: float | None = None
    checkpoint: Callable[[Tally], None] | None = None


def plan(ops: Iterable[Any], names: Iterable[str] | None, schedule: Schedule) -> list[Any]:
    """The OpInfos one process runs: those named (all by default), `first` ones first, then its shard of them."""
    wanted = set(names) if names else None
    chosen = [op for op in ops if wanted is None or op.name in wanted or op_label(op) in wanted]
    rank = {label: i for i, label in enumerate(schedule.first)}
    chosen.sort(key=lambda op: rank.get(op_label(op), len(rank)))  # stable: the others keep op_db's order
    index, count = schedule.shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: the index counts from 0 and stays below the count")
    return chosen[index::count]


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise OutOfTime in the main thread after `seconds` (no limit elsewhere, or with None)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise OutOfTime()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def ieee_fp32(device: str) -> Iterator[None]:
    """ATen's CUDA matmuls and convolutions in full fp32 for the duration (cuDNN would use TF32 by default):
    the library's products are IEEE fp32 on every device, and the reference must be too."""
    if device != "cuda":
        yield
        return
    # cuDNN's flags go through its own context manager: torch's test utilities (imported for op_db)
    # forbid setting them directly once they have run `disable_global_flags()`.
    matmul = torch.backends.cuda.matmul
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer torch prefers fp32_precision; the old flags still work
        previous = matmul.allow_tf32
        matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matmul.allow_tf32 = previous


def run(names: Iterable[str] | None = None, dtypes: Iterable[torch.dtype] = DEFAULT_DTYPES,
        variants: Iterable[str] = VARIANTS, limit: int = 1000, progress: bool = False, device: str = "cpu",
        schedule: Schedule | None = None, tally: Tally | None = None) -> Tally:
    """Run the harness over the OpInfos named (all of `op_db` by default) on `device`; returns the counts.

    `schedule` splits, orders and bounds the run; `tally` continues an earlier one (its counts are kept).
    """
    schedule = schedule or Schedule()
    start, before = time.monotonic(), (tally.seconds if tally else 0.0)
    stop_at = None if schedule.budget is None else start + schedule.budget  # op_db's import (seconds) counts too
    from torch.testing._internal.common_methods_invocations import op_db

    tally = tally or Tally()
    tally.device = device
    ops = plan(op_db, names, schedule)
    tally.planned = [op_label(op) for op in ops]
    ours = set(aten.enable(everything=True, device=device))
    try:
        with ieee_fp32(device):
            for op in ops:
                label = op_label(op)
                if label in schedule.skip:
                    continue
                left = None if stop_at is None else stop_at - time.monotonic()
                if left is not None and left <= 0:
                    break
                stop = _run_op(op, label, dtypes, variants, limit, ours, tally, device,
                               min((t for t in (left, schedule.op_timeout) if t is not None), default=None))
                stop = stop or (stop_at is not None and time.monotonic() >= stop_at)
                tally.seconds = before + time.monotonic() - start
                if schedule.checkpoint is not None:
                    schedule.checkpoint(tally)
                if progress:
                    state = {"done": "", "cut": "  (cut)", "fatal": "  (device failed)"}[_last_state(tally, label)]
                    print(f"{time.monotonic() - start:7.1f}s {label}{state}", flush=True)
                if stop:
                    break
    finally:
        aten.disable()
    tally.seconds = before + time.monotonic() - start
    return tally


def _run_op(op: Any, label: str, dtypes: Iterable[torch.dtype], variants: Iterable[str], limit: int, ours: set[str],
            tally: Tally, device: str, seconds: float | None) -> bool:
    """Every dtype and variant of one OpInfo within `seconds`; records it done, cut or fatal; True: stop the run."""
    try:
        with time_limit(seconds):
            for dtype in op_dtypes(op, dtypes, device):
                _run_one(op, label, dtype, variants, limit, ours, tally, device)
            if "error" in variants:
                _run_errors(op, op.name, limit, ours, tally, device)
    except OutOfTime as error:
        tally.cut.append(label)
        return error.final
    except DeviceLost as error:
        tally.fatal.append({"op": label, "error": str(error)})
        return True
    tally.done.append(label)
    return False


def _last_state(tally: Tally, label: str) -> str:
    return "done" if tally.done[-1:] == [label] else "cut" if tally.cut[-1:] == [label] else "fatal"


def _stop_on_sigterm() -> Any:
    """SIGTERM (a deadline's `timeout`) ends the OpInfo running now like a time limit, so the results so far are
    kept; returns the handler it replaces."""
    def stop(signum: int, frame: Any) -> None:
        raise OutOfTime(final=True)
    return signal.signal(signal.SIGTERM, stop)


def main(args: Any) -> int:
    """`tilebridge align`: run (or `--merge` earlier runs), print the headline, write the reports.

    Exit 1 if any sample FAILed, 3 if the device failed mid-run (`--resume` continues after that OpInfo).
    """
    import json
    import sys
    from pathlib import Path

    from tilebridge.tools import align_report

    def split(text: str) -> list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]

    command = ("tilebridge align " + " ".join(a for a in sys.argv[2:] if a != "--progress")).strip()
    if args.merge:
        parts = [json.loads(Path(path).read_text()) for path in args.merge]
        data = align_report.merge(parts, args.json, args.markdown)
    else:
        dtypes = [getattr(torch, name) for name in split(args.dtypes)] if args.dtypes else DEFAULT_DTYPES
        variants = split(args.variants) if args.variants else VARIANTS
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
        tally = Tally()
        if args.resume and args.json and Path(args.json).exists():
            tally = Tally.from_json(json.loads(Path(args.json).read_text()))
        first = align_report.reached_opinfos(json.loads(Path(args.first_from).read_text())) if args.first_from else ()
        index, _, count = (args.shard or "0/1").partition("/")
        budget = args.budget
        if args.deadline is not None:
            budget = min(b for b in (budget, args.deadline - time.time()) if b is not None)
        schedule = Schedule(shard=(int(index), int(count or 1)), first=first,
                            skip={*tally.done, *tally.cut, *(f["op"] for f in tally.fatal)},
                            budget=budget, op_timeout=args.op_timeout,
                            checkpoint=(lambda t: align_report.write(t, command, args.json, None)) if args.json else None)
        previous = _stop_on_sigterm()
        try:
            tally = run(split(args.ops) if args.ops else None, dtypes, variants, args.limit, progress=args.progress,
                        device=args.device, schedule=schedule, tally=tally)
        except OutOfTime:  # outside any OpInfo (importing op_db, say): what finished is in `tally`
            if args.json:
                align_report.write(tally, command, args.json, None)
            print("align: stopped (SIGTERM) outside an OpInfo; the JSON holds what finished", flush=True)
            return 2
        finally:
            signal.signal(signal.SIGTERM, previous)  # from here a SIGTERM ends the process; writes are atomic
        data = align_report.write(tally, command, args.json, args.markdown)
    if args.portability:
        cpu = json.loads(Path(args.cpu_json).read_text()) if args.cpu_json else None
        align_report.put_section(args.portability, align_report.portability(data, cpu))
    for dtype, counts in data["by_dtype"].items():
        print(f"{dtype:>14}: " + "  ".join(f"{o} {counts.get(o, 0)}" for o in OUTCOMES))
    print(f"{len(data['served_ops_without_fail'])} aten ops served with 0 FAIL; {len(data['ops_with_fail'])} with a FAIL "
          f"{data['ops_with_fail']}; {data['seconds']} s; OpInfos {len(data['done'])} done, {len(data['cut'])} cut, "
          f"{len(data['planned']) - len(data['done']) - len(data['cut']) - len(data['fatal'])} not reached")
    if data["fatal"]:
        print(f"device failed: {data['fatal']}")
        return 3
    return 1 if data["ops_with_fail"] else 0
