"""A first look at the operator library on a device: common ops, library on against ATen, the largest error.

`python -m tilebridge.tools.smoke --device cuda` runs before the OpInfo harness in a portability run, so
that the basic answer (do the kernels compile there, and agree with ATen?) is in even if the harness
cannot run. Each case makes its inputs on the CPU from a seeded generator, moves them to the device,
and runs once through ATen (`bypassed()`) and once through the library; it reports which of our
overloads served it, the largest difference from ATen, and the first call's time (the compile).
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from tilebridge.integrations.torch import aten

# name -> (the computation, its inputs as (shape, dtype) or a ready value)
CASES: dict[str, tuple[Callable[..., Any], list[Any]]] = {
    "add (broadcast)": (lambda a, b: a + b, [((64, 257), torch.float32), ((257,), torch.float32)]),
    "add (transposed)": (lambda a, b: a.t() + b.t(), [((96, 64), torch.float32), ((96, 64), torch.float32)]),
    "add int64": (lambda a, b: a + b, [((1000,), torch.int64), ((1000,), torch.int64)]),
    "mul bf16": (lambda a, b: a * b, [((4096,), torch.bfloat16), ((4096,), torch.bfloat16)]),
    "exp fp16": (torch.exp, [((3000,), torch.float16)]),
    "gelu": (F.gelu, [((64, 512), torch.float32)]),
    "where": (lambda a, b: torch.where(a > 0, a, b), [((1000,), torch.float32), ((1000,), torch.float32)]),
    "logical_and": (torch.logical_and, [((777,), torch.bool), ((777,), torch.bool)]),
    "softmax": (lambda a: torch.softmax(a, -1), [((64, 1000), torch.float32)]),
    "log_softmax fp16": (lambda a: torch.log_softmax(a, -1), [((32, 333), torch.float16)]),
    "mm": (torch.mm, [((128, 64), torch.float32), ((64, 96), torch.float32)]),
    "bmm bf16": (torch.bmm, [((4, 64, 32), torch.bfloat16), ((4, 32, 48), torch.bfloat16)]),
    "addmm": (torch.addmm, [((96,), torch.float32), ((128, 64), torch.float32), ((64, 96), torch.float32)]),
    "layer_norm": (lambda a, w, b: F.layer_norm(a, (768,), w, b), [((32, 768), torch.float32), ((768,), torch.float32),
                                                                   ((768,), torch.float32)]),
    "layer_norm backward": (lambda a, w, b: _grads(lambda a, w, b: F.layer_norm(a, (768,), w, b), a, w, b),
                            [((32, 768), torch.float32), ((768,), torch.float32), ((768,), torch.float32)]),
    "sum": (lambda a: a.sum(1), [((64, 1000), torch.float32)]),
    "amax": (lambda a: a.amax(0), [((64, 1000), torch.float32)]),
    "mean": (lambda a: a.mean(), [((4096,), torch.float32)]),
    "cumsum": (lambda a: a.cumsum(1), [((16, 1000), torch.float32)]),
    "cumsum int64": (lambda a: a.cumsum(0), [((1000,), torch.int64)]),
    "index_select": (lambda a, i: a.index_select(0, i), [((100, 64), torch.float32), "index"]),
    "embedding": (lambda w, i: F.embedding(i, w), [((100, 64), torch.float32), "index"]),
    "cross_entropy": (lambda a, t: F.cross_entropy(a, t), [((32, 100), torch.float32), "target"]),
    "topk": (lambda a: a.topk(5, -1), [((16, 100), torch.float32)]),
    "sort": (lambda a: a.sort(dim=-1, stable=True), [((16, 100), torch.float32)]),
    "cat": (lambda a, b: torch.cat([a, b], 1), [((16, 100), torch.float32), ((16, 50), torch.float32)]),
    "arange": (lambda a: torch.arange(3, 1000, 2, device=a.device), [((1,), torch.float32)]),
}


def _grads(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return list(torch.autograd.grad(out, leaves, torch.ones_like(out)))


def _inputs(specs: list[Any], device: str) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    values = []
    for spec in specs:
        if spec == "index":
            values.append(torch.randint(0, 100, (37,), generator=generator))
        elif spec == "target":
            values.append(torch.randint(0, 100, (32,), generator=generator))
        else:
            shape, dtype = spec
            if dtype == torch.bool:
                values.append(torch.rand(shape, generator=generator) < 0.5)
            elif dtype.is_floating_point:
                values.append((torch.rand(shape, generator=generator) * 4 - 2).to(dtype))
            else:
                values.append(torch.randint(-50, 50, shape, generator=generator, dtype=dtype))
    return [v.to(device) for v in values]


def _flat(result: Any) -> list[torch.Tensor]:
    return [result] if isinstance(result, torch.Tensor) else [t for t in result if isinstance(t, torch.Tensor)]


def check(name: str, device: str) -> dict:
    """One case: {'case', 'ok', 'served', 'max_error', 'ms', 'error'}."""
    fn, specs = CASES[name]
    row: dict[str, Any] = {"case": name, "ok": False, "served": [], "max_error": None, "ms": None, "error": None}
    try:
        inputs = _inputs(specs, device)
        with aten.bypassed():
            want = _flat(fn(*inputs))
        for counter in aten.COUNTERS.values():
            counter.clear()
        start = time.perf_counter()
        got = _flat(fn(*inputs))
        if device != "cpu":
            getattr(torch, device).synchronize()
        row["ms"] = round((time.perf_counter() - start) * 1e3, 1)
        row["served"] = sorted(aten.COUNTERS["served"])
        error = 0.0
        for g, w in zip(got, want, strict=True):
            if g.shape != w.shape or g.dtype != w.dtype:
                raise AssertionError(f"{g.dtype}{list(g.shape)} != ATen's {w.dtype}{list(w.shape)}")
            error = max(error, float((g.double() - w.double()).abs().max()) if g.numel() else 0.0)
            tolerance = 2e-2 if w.dtype in (torch.float16, torch.bfloat16) else 1e-3
            torch.testing.assert_close(g, w, atol=tolerance, rtol=tolerance)
        row["max_error"], row["ok"] = error, bool(row["served"])
    except Exception as error:  # noqa: BLE001 -- each case reports for itself
        row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    import triton

    driver = type(triton.runtime.driver.active).__module__
    print(f"torch {torch.__version__}, triton {triton.__version__}, triton's active driver {driver}", flush=True)
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}", flush=True)
    served = aten.enable(everything=True, device=args.device)
    print(f"{len(served)} overloads registered on the {aten.DISPATCH_KEYS[args.device]} key", flush=True)
    rows = []
    try:
        for name in CASES:
            row = check(name, args.device)
            rows.append(row)
            if args.json:  # after every case: a run stopped at its deadline keeps what it checked
                with open(args.json, "w") as file:
                    json.dump(rows, file, indent=1)
            state = "ok  " if row["ok"] else "FAIL" if row["error"] or row["served"] else "ATen"
            error = "-" if row["max_error"] is None else f"{row['max_error']:.1e}"
            print(f"{state} {name:<20} max|err| {error:<8} first call {row['ms']} ms, served "
                  f"{','.join(row['served']) or '-'}"
                  + (f"  {row['error']}" if row["error"] else ""), flush=True)
    finally:
        aten.disable()
    passed = sum(row["ok"] for row in rows)
    print(f"smoke on {args.device}: {passed} of {len(rows)} cases served by the library and equal to ATen", flush=True)
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
