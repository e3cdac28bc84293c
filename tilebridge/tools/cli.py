"""The `tilebridge` command: `demo`, `doctor`, `bench` and `--version`.

Subcommands import their modules only when chosen, so `tilebridge --version` and `tilebridge --help`
answer at once, without importing triton or torch.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    from tilebridge.tools.demo import main as demo_main

    return demo_main(repetitions=args.repetitions)


def _doctor(args: argparse.Namespace) -> int:
    from tilebridge.tools.doctor import main as doctor_main

    return doctor_main()


def _bench(args: argparse.Namespace) -> int:
    print("tilebridge bench: not yet implemented (see the issue tracker); "
          "`tilebridge demo` times three kernels against PyTorch in the meantime.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, separate from `main` so tests and docs can inspect it."""
    from tilebridge import __version__

    parser = argparse.ArgumentParser(prog="tilebridge",
                                     description="Triton kernels, unmodified, compiled to native code on the CPU.")
    parser.add_argument("--version", action="version", version=f"tilebridge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="run, check and time three Triton kernels on CPU tensors")
    demo.add_argument("--repetitions", type=int, default=7, help="timed runs per kernel (median reported)")
    demo.set_defaults(handler=_demo)
    doctor = commands.add_parser("doctor", help="check the compiler, OpenMP, versions and driver; run one kernel")
    doctor.set_defaults(handler=_doctor)
    bench = commands.add_parser("bench", help="benchmarks (not yet implemented)")
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the command line) and run the subcommand; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
