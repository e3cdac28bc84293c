"""`tilebridge bench`: run the suite, print the table, write the requested files; the exit code says if all passed."""
from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence


def reproduce_command(quick: bool, only: Sequence[str] | None, interpreter: bool, plot_path: str | None,
                      markdown_path: str | None) -> str:
    """The command line that reruns this benchmark and rewrites its reports (recorded in them).

    The JSON path is left out: it does not change what is measured, and it is often a scratch file.
    """
    words = ["tilebridge", "bench"]
    if quick:
        words.append("--quick")
    if only:
        words += ["--only", ",".join(only)]
    if not interpreter:
        words.append("--no-interpreter")
    for flag, path in (("--plot", plot_path), ("--markdown", markdown_path)):
        if path:
            words += [flag, path]
    return shlex.join(words)


def main(quick: bool = False, only: Sequence[str] | None = None, interpreter: bool = True, json_path: str | None = None,
         plot_path: str | None = None, markdown_path: str | None = None) -> int:
    """Run the suite; 0 if every selected case compiled, ran and matched PyTorch, 1 otherwise, 2 on bad options."""
    from tilebridge.bench import report, suite

    command = reproduce_command(quick, only, interpreter, plot_path, markdown_path)
    try:
        result = suite.run_suite(quick=quick, only=only, interpreter=interpreter, command=command,
                                 progress=lambda line: print(line, flush=True))
    except ValueError as error:  # an unknown --only name
        print(f"tilebridge bench: {error}", file=sys.stderr)
        return 2
    print()
    print(report.format_terminal(result))
    if json_path:
        report.write_json(result, json_path)
        print(f"wrote {json_path}")
    if plot_path:
        report.write_plot(result, plot_path)
        print(f"wrote {plot_path}")
    if markdown_path:
        report.write_markdown(result, markdown_path, plot_path)
        print(f"wrote {markdown_path}")
    return 1 if result.failed else 0
