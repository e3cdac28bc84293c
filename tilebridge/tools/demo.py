"""`tilebridge demo`: three ordinary Triton kernels run on CPU tensors, checked against PyTorch and timed.

The kernels are written exactly as one would for a GPU, so the demo shows the point of tilebridge:
nothing in them mentions the CPU. They live at module level because Triton reads a kernel's source
from its file. Sizes are deliberately not powers of two, so the masks are exercised, and moderate, so
the whole demo (including one cold compile per kernel) stays well under a minute on two cores.
"""
from __future__ import annotations

import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK: tl.constexpr):
    """out = x + y over a 1-D range; the mask guards the ragged last block."""
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n_elements
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x + y, mask=mask)


@triton.jit
def softmax_kernel(out_ptr, in_ptr, in_row_stride, out_row_stride, n_cols, BLOCK: tl.constexpr):
    """Row-wise softmax, one row per program: load, max, exp, sum and divide fused in one pass."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(in_ptr + row * in_row_stride + cols, mask=mask, other=-float("inf"))
    x = x - tl.max(x, axis=0)
    numerator = tl.exp(x)
    y = numerator / tl.sum(numerator, axis=0)
    tl.store(out_ptr + row * out_row_stride + cols, y, mask=mask)


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                  stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """C = A @ B in fp32, one BLOCK_M x BLOCK_N tile of C per program, masked on every edge."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    accumulator = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(tl.cdiv(K, BLOCK_K)):
        kk = k * BLOCK_K + ks
        a = tl.load(a_ptr + rows[:, None] * stride_am + kk[None, :] * stride_ak,
                    mask=(rows[:, None] < M) & (kk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + kk[:, None] * stride_bk + cols[None, :] * stride_bn,
                    mask=(kk[:, None] < K) & (cols[None, :] < N), other=0.0)
        accumulator += tl.dot(a, b, input_precision="ieee")
    tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, accumulator,
             mask=(rows[:, None] < M) & (cols[None, :] < N))


def vector_add(x: torch.Tensor, y: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """Host wrapper for `add_kernel`: one program per block of elements."""
    out = torch.empty_like(x)
    n = x.numel()
    add_kernel[(triton.cdiv(n, block),)](x, y, out, n, BLOCK=block)
    return out


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Host wrapper for `softmax_kernel`: the whole row fits one power-of-two block."""
    rows, cols = x.shape
    out = torch.empty_like(x)
    softmax_kernel[(rows,)](out, x, x.stride(0), out.stride(0), cols, BLOCK=triton.next_power_of_2(cols))
    return out


def matmul(a: torch.Tensor, b: torch.Tensor, block_m: int = 64, block_n: int = 64, block_k: int = 32) -> torch.Tensor:
    """Host wrapper for `matmul_kernel`: a 2-D grid of output tiles."""
    (m, k), (_, n) = a.shape, b.shape
    c = torch.empty((m, n), dtype=torch.float32)
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    matmul_kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                        c.stride(0), c.stride(1), BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k)
    return c


@dataclass
class DemoResult:
    """One row of the demo table; times are seconds."""

    kernel: str
    shape: str
    max_abs_error: float
    first_call_s: float
    tilebridge_s: float
    torch_s: float

    @property
    def ratio(self) -> float:
        """torch time / tilebridge time: above 1 means the Triton kernel on tilebridge was faster."""
        return self.torch_s / self.tilebridge_s if self.tilebridge_s > 0 else float("inf")


def median_time(fn: Callable[[], object], repetitions: int) -> float:
    """Median wall time of `fn` in seconds; the median rather than the mean because the host may be busy."""
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _case(name: str, shape: str, ours: Callable[[], torch.Tensor], reference: Callable[[], torch.Tensor],
          repetitions: int, atol: float, rtol: float) -> DemoResult:
    start = time.perf_counter()
    result = ours()  # the first call compiles (or loads from Triton's cache)
    first_call = time.perf_counter() - start
    expected = reference()
    torch.testing.assert_close(result, expected, atol=atol, rtol=rtol)
    error = (result - expected).abs().max().item()
    ours()
    reference()  # warm-up for both, so neither pays first-touch costs in the timed runs
    return DemoResult(name, shape, error, first_call, median_time(ours, repetitions),
                      median_time(reference, repetitions))


def run_demo(repetitions: int = 7, seed: int = 0) -> list[DemoResult]:
    """Run, check and time the three kernels; raises AssertionError on a wrong result."""
    generator = torch.Generator().manual_seed(seed)
    n = 1_000_003
    x, y = torch.randn(n, generator=generator), torch.randn(n, generator=generator)
    rows, cols = 1_823, 781
    s = torch.randn(rows, cols, generator=generator)
    m, k, n_cols = 257, 300, 191
    a, b = torch.randn(m, k, generator=generator), torch.randn(k, n_cols, generator=generator)
    return [
        _case("vector add", f"({n},)", lambda: vector_add(x, y), lambda: x + y, repetitions, 0.0, 0.0),
        _case("row softmax", f"({rows}, {cols})", lambda: softmax(s), lambda: torch.softmax(s, dim=-1),
              repetitions, 1e-5, 1.3e-6),
        _case("matmul fp32", f"({m}, {k}) @ ({k}, {n_cols})", lambda: matmul(a, b), lambda: a @ b,
              repetitions, 1e-4, 1e-4),
    ]


def format_table(results: list[DemoResult]) -> str:
    """A plain-text table, readable in a terminal and in a CI log."""
    header = ["kernel", "shape", "max abs err", "first call", "tilebridge", "torch", "torch/tilebridge"]
    rows = [[r.kernel, r.shape, f"{r.max_abs_error:.2e}", f"{r.first_call_s * 1e3:.0f} ms",
             f"{r.tilebridge_s * 1e6:.0f} us", f"{r.torch_s * 1e6:.0f} us", f"{r.ratio:.2f}x"] for r in results]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(repetitions: int = 7) -> int:
    """Entry point for `tilebridge demo`; returns the process exit code."""
    import triton.runtime

    driver = type(triton.runtime.driver.active).__module__
    print(f"tilebridge demo: Triton {triton.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, active Triton driver from {driver}")
    try:
        results = run_demo(repetitions)
    except AssertionError as error:
        print(f"FAIL: a kernel disagreed with PyTorch:\n{error}")
        return 1
    except Exception:  # noqa: BLE001 - a compile or launch failure: show it whole, it names the construct and the line
        print("FAIL: a kernel did not compile or run:")
        traceback.print_exc(file=sys.stdout)
        return 1
    print(format_table(results))
    print("all kernels match PyTorch (torch.testing.assert_close). 'first call' includes compiling the kernel, "
          "or loading it from Triton's cache; times are medians of "
          f"{repetitions} runs after a warm-up.")
    return 0
