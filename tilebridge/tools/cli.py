"""The `tilebridge` command: `demo`, `doctor`, `bench`, `align`, `models`, `run` and `--version`.

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
    from tilebridge.bench.command import main as bench_main

    if args.operators:
        from tilebridge.bench.operators import main as operators_main

        return operators_main(json_path=args.json, markdown_path=args.markdown)
    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    return bench_main(quick=args.quick, only=only, interpreter=args.interpreter, json_path=args.json,
                      plot_path=args.plot, markdown_path=args.markdown)


def _align(args: argparse.Namespace) -> int:
    from tilebridge.tools.align_run import main as align_main

    return align_main(args)


def _models(args: argparse.Namespace) -> int:
    from tilebridge.tools.models import main as models_main

    return models_main(models=[name.strip() for name in args.models.split(",") if name.strip()],
                       repetitions=args.repetitions, tiny=args.tiny, backward=args.backward, json_path=args.json,
                       markdown_path=args.markdown, threads=args.threads)


def _run(args: argparse.Namespace) -> int:
    from tilebridge.integrations.torch.migrate import run_script

    run_script(args.script, args.arguments)
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
    bench = commands.add_parser("bench", help="time Triton kernels against PyTorch eager and the machine's measured limits")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, few repetitions: a CI smoke test (< 1 min)")
    bench.add_argument("--only", metavar="NAME[,NAME]", help="run only these kernels (e.g. softmax,matmul) or full case names")
    bench.add_argument("--no-interpreter", dest="interpreter", action="store_false",
                       help="skip the comparison with the Triton interpreter")
    bench.add_argument("--operators", action="store_true",
                       help="instead: the operator library against ATen, one aten op at a time (docs/operator-performance.md)")
    bench.add_argument("--json", metavar="PATH", help="write every measurement as JSON")
    bench.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of torch/tilebridge per case")
    bench.add_argument("--markdown", metavar="PATH", help="write the report (e.g. docs/performance.md)")
    bench.set_defaults(handler=_bench)
    align = commands.add_parser("align", help="run PyTorch's OpInfo samples with the operator library off and on")
    align.add_argument("--ops", metavar="NAME[,NAME]", help="OpInfo names (default: all of op_db)")
    align.add_argument("--dtypes", metavar="DTYPE[,DTYPE]", help="default: float32,float16,bfloat16 and the integers, bool")
    align.add_argument("--variants", metavar="V[,V]", help="sample,reference,noncontiguous,out,inplace,error,grad (default: all)")
    align.add_argument("--limit", type=int, default=1000, help="at most this many samples per OpInfo, dtype and variant")
    align.add_argument("--json", metavar="PATH", help="write the counts as JSON (e.g. docs/pytorch-alignment.json)")
    align.add_argument("--markdown", metavar="PATH", help="write the report (e.g. docs/pytorch-alignment.md)")
    align.add_argument("--progress", action="store_true", help="print each OpInfo as it finishes")
    align.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                       help="make the samples there and serve them with the library registered for it (default: cpu)")
    align.add_argument("--shard", metavar="I/N", help="run every N-th OpInfo from the I-th (0-based), to split a run "
                       "over N processes; add the JSONs up with --merge")
    align.add_argument("--first-from", metavar="JSON", help="run first the OpInfos that reached the library in this "
                       "earlier run (e.g. docs/pytorch-alignment.json)")
    align.add_argument("--budget", type=float, metavar="SECONDS", help="start no OpInfo after this long; the running "
                       "one is cut (named in the JSON, its finished samples kept)")
    align.add_argument("--deadline", type=float, metavar="UNIX_TIME", help="like --budget, as a wall-clock time "
                       "(`date +%%s` plus seconds): shards started at different times stop together")
    align.add_argument("--op-timeout", type=float, metavar="SECONDS", help="cut an OpInfo that takes longer than this")
    align.add_argument("--resume", action="store_true", help="continue the run in --json, skipping the OpInfos it "
                       "finished or cut")
    align.add_argument("--merge", nargs="+", metavar="JSON", help="add up the JSONs of a split run instead of running; "
                       "--json/--markdown write the whole")
    align.add_argument("--portability", metavar="MARKDOWN", help="put this (non-CPU) run's portability section into "
                       "the report, e.g. docs/pytorch-alignment.md")
    align.add_argument("--cpu-json", metavar="JSON", help="with --portability: the CPU run to compare with")
    align.set_defaults(handler=_align)
    models = commands.add_parser("models", help="run real models with the operator library off and on: error, coverage, time")
    models.add_argument("--models", default="minilm,gpt,gpt-bf16",
                        help="minilm (needs the `models` extra), gpt, gpt-bf16, gpt-fp16 (default: minilm,gpt,gpt-bf16)")
    models.add_argument("--repetitions", type=int, default=5, help="timed runs per model and setting (median reported)")
    models.add_argument("--threads", type=int, help="torch.set_num_threads for ATen and the library alike")
    models.add_argument("--tiny", action="store_true", help="a tiny GPT configuration: a smoke test")
    models.add_argument("--no-backward", dest="backward", action="store_false", help="skip the GPT's backward pass")
    models.add_argument("--json", metavar="PATH", help="write every figure and per-op count as JSON")
    models.add_argument("--markdown", metavar="PATH", help="write the report (e.g. docs/models.md)")
    models.set_defaults(handler=_models)
    run = commands.add_parser("run", help="run a script written for CUDA on the CPU, unedited (migration mode)")
    run.add_argument("script", help="the Python script")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="its arguments")
    run.set_defaults(handler=_run)
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
