"""Render an alignment run (`tilebridge.tools.align.Tally`) as JSON and as `docs/pytorch-alignment.md`."""
from __future__ import annotations

import json
import platform
from collections import Counter
from pathlib import Path
from typing import Any

OUTCOMES = ("PASS", "FAIL", "FALLBACK", "NOT_HIT")


def to_json(tally: Any, command: str) -> dict:
    """Plain data: per dtype, per OpInfo and per overload counts, the failures, the figures that matter."""
    import torch
    import triton

    from tilebridge.ops.registry import entries

    clean, failing = tally.served_packets()
    table = entries()
    return {
        "command": command,
        "torch": torch.__version__, "triton": triton.__version__, "machine": platform.machine(),
        "seconds": round(tally.seconds, 1),
        "registered_overloads": len(table),
        "registered_ops": len({e.packet for e in table.values()}),
        "served_ops_without_fail": clean,
        "ops_with_fail": failing,
        "by_dtype": {d: dict(c) for d, c in tally.by_dtype.items()},
        "by_op": {op: {d: dict(c) for d, c in dtypes.items()} for op, dtypes in tally.by_op.items()},
        "by_overload": {o: {d: dict(c) for d, c in dtypes.items()} for o, dtypes in sorted(tally.by_overload.items())},
        "failures": tally.failures,
    }


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def to_markdown(data: dict) -> str:
    """The committed report: headline figures, counts per dtype, per aten op and per OpInfo."""
    lines = ["# PyTorch alignment", "",
             "PyTorch's own OpInfo samples (`torch.testing._internal.common_methods_invocations.op_db`) run with "
             "tilebridge's operator library off and on, in one process; see `tilebridge/tools/align.py` for the "
             "classification (PASS / FAIL / FALLBACK / NOT_HIT) and the tolerances (atol = rtol = 1e-3, integers exact, "
             "16-bit disagreements judged against float64).", "",
             f"Command: `{data['command']}` — torch {data['torch']}, triton {data['triton']}, {data['machine']}, "
             f"{data['seconds']} s.", "",
             f"- **{len(data['served_ops_without_fail'])} distinct aten ops served by tilebridge kernels with 0 FAIL** "
             f"(at least one PASS, no FAIL, over every dtype and variant run).",
             f"- aten ops with a FAIL: {len(data['ops_with_fail'])}" +
             (f" ({', '.join(data['ops_with_fail'])})" if data["ops_with_fail"] else ""),
             f"- registered: {data['registered_overloads']} overloads of {data['registered_ops']} aten ops.", "",
             "## Samples per dtype", "",
             _row(["dtype", *OUTCOMES, "of the PASS: judged by float64"]), _row(["---"] * 6)]
    for dtype, counts in data["by_dtype"].items():
        lines.append(_row([dtype, *(counts.get(o, 0) for o in OUTCOMES), counts.get("pass_vs_float64", 0)]))
    lines += ["", "## Per aten op (all overloads: functional, out=, in-place; all dtypes)", "",
              _row(["aten op", "overloads reached", "PASS", "FAIL", "FALLBACK", "dtypes with a PASS"]), _row(["---"] * 6)]
    from tilebridge.ops.registry import packet_of
    packets: dict[str, dict] = {}
    for overload, dtypes in data["by_overload"].items():
        entry = packets.setdefault(packet_of(overload), {"overloads": set(), "counts": Counter(), "dtypes": set()})
        entry["overloads"].add(overload)
        for dtype, counts in dtypes.items():
            entry["counts"].update(counts)
            if counts.get("PASS"):
                entry["dtypes"].add(dtype)
    for packet in sorted(packets):
        entry = packets[packet]
        lines.append(_row([f"`{packet}`", len(entry["overloads"]), entry["counts"]["PASS"], entry["counts"]["FAIL"],
                           entry["counts"]["FALLBACK"], " ".join(sorted(entry["dtypes"]))]))
    lines += ["", "## Per OpInfo (those that reached the library)", "",
              _row(["OpInfo", "dtype", *OUTCOMES]), _row(["---"] * 6)]
    for op, dtypes in sorted(data["by_op"].items()):
        for dtype, counts in dtypes.items():
            if counts.get("PASS") or counts.get("FAIL") or counts.get("FALLBACK"):
                lines.append(_row([op, dtype, *(counts.get(o, 0) for o in OUTCOMES)]))
    if data["failures"]:
        lines += ["", "## Failures (first 50)", ""]
        for failure in data["failures"][:50]:
            lines.append(f"- {failure['op']} {failure['dtype']} {failure['variant']} {failure['overloads']}: "
                         f"{failure['detail']}")
    return "\n".join(lines) + "\n"


def write(tally: Any, command: str, json_path: str | None, markdown_path: str | None) -> dict:
    data = to_json(tally, command)
    if json_path:
        Path(json_path).write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    if markdown_path:
        Path(markdown_path).write_text(to_markdown(data))
    return data
