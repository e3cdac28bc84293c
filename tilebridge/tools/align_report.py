"""Render an alignment run (`tilebridge.tools.align.Tally`) as JSON and as `docs/pytorch-alignment.md`.

Also: add up the parts of a run that was split over processes (`merge`), and render a run on another
device as the report's portability section (`portability`), which `put_section` places in the committed
report and which a later CPU report keeps.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

OUTCOMES = ("PASS", "FAIL", "FALLBACK", "NOT_HIT")
# What describes the machine and library a run saw: a merge takes these from its parts, not from where it runs.
RUN_FIELDS = ("torch", "triton", "machine", "device", "device_name", "registered_overloads", "registered_ops",
              "registered_on_device", "unavailable_modules")


@functools.cache
def _environment(device: str) -> dict:
    """The machine and library of this process (once: a run writes its JSON after every OpInfo)."""
    import torch
    import triton

    from tilebridge.integrations.torch.aten import DISPATCH_KEYS, _has_backend_kernel
    from tilebridge.ops.registry import UNAVAILABLE, entries

    table = entries()
    name = platform.processor() or platform.machine()
    if device == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
    return {"torch": torch.__version__, "triton": triton.__version__, "machine": platform.machine(), "device": device,
            "device_name": name, "registered_overloads": len(table),
            "registered_ops": len({e.packet for e in table.values()}),
            "registered_on_device": sum(_has_backend_kernel(e.overload, DISPATCH_KEYS[device]) for e in table.values()),
            "unavailable_modules": dict(UNAVAILABLE)}


def served_ops(by_overload: dict) -> tuple[list[str], list[str]]:
    """(aten ops with at least one PASS and no FAIL, aten ops with a FAIL), overloads grouped by op."""
    from tilebridge.ops.registry import packet_of

    passes, fails = Counter(), Counter()
    for overload, dtypes in by_overload.items():
        for counts in dtypes.values():
            passes[packet_of(overload)] += counts.get("PASS", 0)
            fails[packet_of(overload)] += counts.get("FAIL", 0)
    return sorted(p for p in passes if passes[p] and not fails[p]), sorted(p for p in fails if fails[p])


def to_json(tally: Any, command: str, environment: dict | None = None) -> dict:
    """Plain data: per dtype, per OpInfo and per overload counts, the failures, the figures that matter."""
    by_overload = {o: {d: dict(c) for d, c in dtypes.items()} for o, dtypes in sorted(tally.by_overload.items())}
    clean, failing = served_ops(by_overload)
    return {
        "command": command,
        **(environment if environment is not None else dict(_environment(tally.device))),
        "seconds": round(tally.seconds, 1),
        "served_ops_without_fail": clean,
        "ops_with_fail": failing,
        "by_dtype": {d: dict(c) for d, c in tally.by_dtype.items()},
        "by_op": {op: {d: dict(c) for d, c in dtypes.items()} for op, dtypes in tally.by_op.items()},
        "by_overload": by_overload,
        "planned": list(tally.planned), "done": list(tally.done), "cut": list(tally.cut), "fatal": list(tally.fatal),
        "failures": tally.failures,
    }


def reached_opinfos(data: dict) -> list[str]:
    """The OpInfos of a run whose samples reached the library (PASS, FAIL or FALLBACK), in the run's order."""
    return [op for op, dtypes in data["by_op"].items()
            if any(counts.get(o, 0) for counts in dtypes.values() for o in ("PASS", "FAIL", "FALLBACK"))]


def merge(parts: list[dict], json_path: str | None = None, markdown_path: str | None = None) -> dict:
    """One run from its parts (the JSON of each shard): counts add up, the machine is the parts' own."""
    from tilebridge.tools.align import Tally

    if not parts:
        raise ValueError("nothing to merge")
    tally = Tally.from_json(parts[0])
    for part in parts[1:]:
        tally.absorb(Tally.from_json(part))
    command = re.sub(r"--shard \d+/(\d+)", r"--shard i/\1", parts[0]["command"])
    command = re.sub(r" --(json|markdown|deadline) \S+| --resume", "", command)  # each part's own files and clock
    data = to_json(tally, command, {k: parts[0].get(k) for k in RUN_FIELDS})
    data["parts"] = len(parts)
    _write(data, json_path, markdown_path)
    return data


# --- markdown ------------------------------------------------------------------------------------------------

def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _header(data: dict) -> str:
    device = data.get("device", "cpu")
    where = f"{device} ({data['device_name']})" if data.get("device_name") and device != "cpu" else device
    return (f"Command: `{data['command']}` — device {where}, torch {data['torch']}, triton {data['triton']}, "
            f"{data['machine']}, {data['seconds']} s.")


def to_markdown(data: dict) -> str:
    """The committed report: headline figures, counts per dtype, per aten op and per OpInfo."""
    device = data.get("device", "cpu")
    lines = ["# PyTorch alignment" + ("" if device == "cpu" else f" on {device}"), "",
             "PyTorch's own OpInfo samples (`torch.testing._internal.common_methods_invocations.op_db`) run with "
             "tilebridge's operator library off and on, in one process; see `tilebridge/tools/align.py` for the "
             "classification (PASS / FAIL / FALLBACK / NOT_HIT) and the tolerances (atol = rtol = 1e-3, integers exact, "
             "16-bit disagreements judged against float64).", "",
             _header(data), "",
             f"- **{len(data['served_ops_without_fail'])} distinct aten ops served by tilebridge kernels with 0 FAIL** "
             f"(at least one PASS, no FAIL, over every dtype and variant run).",
             f"- aten ops with a FAIL: {len(data['ops_with_fail'])}" +
             (f" ({', '.join(data['ops_with_fail'])})" if data["ops_with_fail"] else ""),
             f"- registered: {data['registered_overloads']} overloads of {data['registered_ops']} aten ops.", ""]
    if device != "cpu":
        lines += [portability(data), ""]
    lines += ["## Samples per dtype", "",
              _row(["dtype", *OUTCOMES, "of the PASS: judged by float64"]), _row(["---"] * 6)]
    for dtype, counts in data["by_dtype"].items():
        lines.append(_row([dtype, *(counts.get(o, 0) for o in OUTCOMES), counts.get("pass_vs_float64", 0)]))
    lines += ["", "## Per aten op (all overloads: functional, out=, in-place; all dtypes)", "",
              _row(["aten op", "overloads reached", "PASS", "FAIL", "FALLBACK", "dtypes with a PASS"]), _row(["---"] * 6)]
    packets = _by_packet(data["by_overload"])
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


def _by_packet(by_overload: dict) -> dict[str, dict]:
    from tilebridge.ops.registry import packet_of

    packets: dict[str, dict] = {}
    for overload, dtypes in by_overload.items():
        entry = packets.setdefault(packet_of(overload), {"overloads": set(), "counts": Counter(), "dtypes": set()})
        entry["overloads"].add(overload)
        for dtype, counts in dtypes.items():
            entry["counts"].update(counts)
            if counts.get("PASS"):
                entry["dtypes"].add(dtype)
    return packets


# --- the portability section -----------------------------------------------------------------------------------

def _markers(device: str) -> tuple[str, str]:
    return f"<!-- portability:{device} -->", f"<!-- /portability:{device} -->"


def error_kind(detail: str) -> str:
    """A failure's detail with its numbers blanked, so that failures of one cause group together."""
    return re.sub(r"0x[0-9a-fA-F]+|\d+(\.\d+)?([eE][-+]?\d+)?", "#", detail)[:120]


def failure_groups(failures: list[dict]) -> list[tuple[str, int, list[str]]]:
    """(error kind, samples, OpInfos with their dtypes) for each kind of failure, the most frequent first."""
    samples: Counter = Counter()
    where: dict[str, set] = defaultdict(set)
    for failure in failures:
        kind = error_kind(failure["detail"])
        samples[kind] += 1
        where[kind].add(f"{failure['op']} {failure['dtype']}")
    return [(kind, count, sorted(where[kind])) for kind, count in samples.most_common()]


def portability(data: dict, cpu: dict | None = None) -> str:
    """The report's section for a run on another device (between markers, so that it can be replaced)."""
    device = data.get("device", "cpu")
    begin, end = _markers(device)
    clean, failing = data["served_ops_without_fail"], data["ops_with_fail"]
    planned, finished = data.get("planned", []), data.get("done", [])
    cut, fatal = data.get("cut", []), data.get("fatal", [])
    missing = len(planned) - len(finished) - len(cut) - len(fatal)
    lines = [begin, f"## {device.upper()} portability", "",
             f"The operator library's Triton sources, unchanged, compiled by stock Triton {data['triton']} for "
             f"{data.get('device_name') or device} and registered on the {device.upper()} dispatch key "
             f"(`tilebridge.enable(device=\"{device}\")`); the OpInfo samples are made on the device and judged against "
             f"ATen's own {device.upper()} kernels, with the tolerances above. torch {data['torch']}; "
             f"`{data['command']}`" + (f" in {data['parts']} processes" if data.get("parts") else "") +
             f", {data['seconds']} s.", "",
             f"- **{len(clean)} distinct aten ops served on {device.upper()} with 0 FAIL**; with a FAIL: {len(failing)}"
             + (f" ({', '.join(failing)})" if failing else "") + ".",
             f"- OpInfos: {len(finished)} finished, {len(cut)} cut by the time limit, {max(missing, 0)} not reached "
             f"(of {len(planned)}); the device failed in {len(fatal)}"
             + (": " + "; ".join(f"{f['op']} ({f['error'][:100]})" for f in fatal) if fatal else "") + ".",
             f"- registered on the {device.upper()} key: {data.get('registered_on_device', '?')} of "
             f"{data['registered_overloads']} overloads (the others have no {device.upper()} kernel to stand in for)."]
    if data.get("unavailable_modules"):
        lines.append(f"- operator modules that did not import there: {data['unavailable_modules']}")
    if cpu is not None:
        lines.append(_against_cpu(data, cpu))
    lines += ["", _row(["dtype", *OUTCOMES]), _row(["---"] * 5)]
    for dtype, counts in data["by_dtype"].items():
        lines.append(_row([dtype, *(counts.get(o, 0) for o in OUTCOMES)]))
    lines += ["", f"Served on {device.upper()} with 0 FAIL: " + (", ".join(f"`{p}`" for p in clean) or "none") + "."]
    groups = failure_groups(data["failures"])
    if groups:
        lines += ["", f"Failures by kind of error ({len(data['failures'])} samples):", "",
                  _row(["error (numbers blanked)", "samples", "OpInfo dtype"]), _row(["---"] * 3)]
        for kind, count, ops in groups[:40]:
            lines.append(_row([kind, count, ", ".join(ops[:12]) + (f" and {len(ops) - 12} more" if len(ops) > 12 else "")]))
    return "\n".join(lines + [end])


def _against_cpu(data: dict, cpu: dict) -> str:
    """How the aten ops the CPU run serves with 0 FAIL fared here: clean, FAIL, only handed back, or not reached."""
    from tilebridge.ops.registry import packet_of

    cpu_clean = set(cpu["served_ops_without_fail"])
    reached = {packet_of(o) for o in data["by_overload"]}
    failing = cpu_clean & set(data["ops_with_fail"])
    declined = (cpu_clean & reached) - set(data["served_ops_without_fail"]) - failing
    unreached = cpu_clean - reached

    def names(ops: set[str]) -> str:
        return ", ".join(f"`{p}`" for p in sorted(ops)) or "none"
    return (f"- of the {len(cpu_clean)} aten ops served with 0 FAIL on the CPU (the report above): "
            f"{len(cpu_clean & set(data['served_ops_without_fail']))} also here; with a FAIL here: {names(failing)}; "
            f"reached but always handed back to ATen here: {names(declined)}; not reached by this run's samples: "
            f"{len(unreached)}.")


def put_section(path: str, section: str) -> None:
    """Place `section` in the markdown at `path`, replacing the earlier one of the same device (or at the end)."""
    begin, end = section.splitlines()[0], section.splitlines()[-1]
    file = Path(path)
    text = file.read_text() if file.exists() else ""
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    _atomic(file, text)


def _kept_sections(path: str) -> list[str]:
    """The portability sections a report at `path` holds, which rewriting it with a CPU run keeps."""
    file = Path(path)
    if not file.exists():
        return []
    return re.findall(r"<!-- portability:(?!cpu)\w+ -->.*?<!-- /portability:\w+ -->", file.read_text(), re.S)


# --- files ---------------------------------------------------------------------------------------------------

def _atomic(file: Path, text: str) -> None:
    """Write whole or not at all: a process killed at its deadline leaves the previous file, never half of one."""
    temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, file)


def _write(data: dict, json_path: str | None, markdown_path: str | None) -> None:
    if json_path:
        _atomic(Path(json_path), json.dumps(data, indent=1, sort_keys=False) + "\n")
    if markdown_path:
        kept = _kept_sections(markdown_path) if data.get("device", "cpu") == "cpu" else []
        _atomic(Path(markdown_path), to_markdown(data) + "".join(f"\n{section}\n" for section in kept))


def write(tally: Any, command: str, json_path: str | None, markdown_path: str | None) -> dict:
    data = to_json(tally, command)
    _write(data, json_path, markdown_path)
    return data
