"""The benchmark cases: for each kernel, the sizes to run, the PyTorch eager code doing the same work, and
the work itself (bytes that must move, floating-point operations) that the roofline is computed from.

A case is data, not code: `Case.setup()` builds the inputs and returns a `Workload` with the two
callables to time, so the suite treats every kernel alike and frees each case's inputs before the
next. Inputs come from a seeded generator, so the interpreter subprocess can rebuild the same small
inputs bit for bit. Full sizes are chosen so the memory-bound cases move at least 64 MiB (past the
private caches; see the machine description for the L3 size), quick sizes so the whole suite is a
CI smoke test.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from tilebridge.bench import kernels

FLOAT = 4  # bytes in an fp32 element
MEMORY, COMPUTE = "memory", "compute"


@dataclass
class Workload:
    """One prepared case: the two callables to time and the work they both do.

    `expected` (default: `reference`) is what `ours` is checked against; it differs only where the
    timed ATen call rounds its output differently (bf16 matmul returns bf16; ours returns fp32).
    `given_output` is set where both sides allocate their outputs on every call (no native `out=`):
    the same kernel writing into outputs made once, timed beside them for the roofline fraction, so
    that fraction measures the kernel, as the `copy_` roof (into a buffer made once) measures a copy.
    """

    ours: Callable[[], Any]
    reference: Callable[[], Any]
    bytes: int
    flops: int
    elements: int
    tolerance: dict[str, float] = field(default_factory=lambda: {"rtol": 1e-5, "atol": 1e-5})
    expected: Callable[[], Any] | None = None
    given_output: Callable[[], Any] | None = None


@dataclass(frozen=True)
class Case:
    """A kernel at one size. `kernel` names the family (what `--only` and the interpreter table use)."""

    kernel: str
    shape: str
    bound: str
    setup: Callable[[], Workload]

    @property
    def name(self) -> str:
        return f"{self.kernel} {self.shape}"


def _random(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _outputs(*like: torch.Tensor) -> tuple:
    """Output tensors for each side, made once per case: the timed calls write into them (`out=`).

    Fresh outputs of many MiB would be page-faulted in on every call (glibc maps large blocks anew
    and returns them on free), which costs more than the kernels themselves on this kind of machine
    and says nothing about them. Used only where ATen has a native `out=` kernel; where it has none
    (layer norm, whose `out=` form computes and then copies; RMSNorm, cross-entropy and SDPA, which
    eager composes) both sides allocate on every call, as users' code does.
    """
    def one() -> torch.Tensor | tuple:
        made = tuple(torch.empty_like(t) for t in like)
        return made[0] if len(made) == 1 else made
    return one(), one()


# --- workloads, one builder per kernel ------------------------------------------------------------------

def add(n: int) -> Workload:
    """x + y: two reads and a write per element, one flop; exact, so no tolerance."""
    x, y = _random(n, seed=1), _random(n, seed=2)
    out, ref = _outputs(x)
    return Workload(lambda: kernels.vector_add(x, y, out=out), lambda: torch.add(x, y, out=ref), 3 * n * FLOAT, n, n,
                    {"rtol": 0, "atol": 0})


def gelu(n: int) -> Workload:
    """GELU (tanh): one read, one write; about ten flops an element, still far below the compute roof."""
    x = _random(n, seed=3)
    out, ref = _outputs(x)
    return Workload(lambda: kernels.gelu_tanh(x, out=out), lambda: torch._C._nn.gelu(x, approximate="tanh", out=ref),
                    2 * n * FLOAT, 10 * n, n,
                    {"rtol": 1e-5, "atol": 1e-5})


def swiglu(n: int) -> Workload:
    """silu(a) * b: the fused kernel reads two and writes one; eager ATen makes an intermediate as well."""
    a, b = _random(n, seed=4), _random(n, seed=5)
    out, ref = _outputs(a)
    return Workload(lambda: kernels.swiglu(a, b, out=out), lambda: torch.mul(F.silu(a), b, out=ref), 3 * n * FLOAT, 5 * n, n)


def softmax(rows: int, cols: int) -> Workload:
    """Row softmax: one read and one write per element is the least any implementation can move."""
    x = _random(rows, cols, seed=6)
    out, ref = _outputs(x)
    return Workload(lambda: kernels.softmax(x, out=out), lambda: torch._softmax(x, -1, False, out=ref), 2 * rows * cols * FLOAT,
                    5 * rows * cols, rows * cols, {"rtol": 1e-5, "atol": 1e-6})


def layer_norm_forward(rows: int, cols: int) -> Workload:
    """Layer norm forward with mean and rstd saved, as `aten.native_layer_norm` returns them."""
    x, w, b = _random(rows, cols, seed=7), _random(cols, seed=8), _random(cols, seed=9)
    moved = (2 * rows * cols + 2 * cols + 2 * rows) * FLOAT
    given = (torch.empty_like(x), torch.empty(rows, 1), torch.empty(rows, 1))
    return Workload(lambda: kernels.layer_norm_forward(x, w, b), lambda: torch.native_layer_norm(x, (cols,), w, b, 1e-5),
                    moved, 8 * rows * cols, rows * cols, {"rtol": 1e-4, "atol": 1e-4},
                    given_output=lambda: kernels.layer_norm_forward(x, w, b, out=given))


def layer_norm_backward(rows: int, cols: int) -> Workload:
    """dx, dw, db given the forward's mean and rstd, against `aten.native_layer_norm_backward`."""
    x, w, b, dy = _random(rows, cols, seed=10), _random(cols, seed=11), _random(cols, seed=12), _random(rows, cols, seed=13)
    _, mean, rstd = torch.native_layer_norm(x, (cols,), w, b, 1e-5)

    def reference() -> tuple[torch.Tensor, ...]:
        return torch.ops.aten.native_layer_norm_backward(dy, x, [cols], mean, rstd, w, b, [True, True, True])

    moved = (3 * rows * cols + 3 * cols + 2 * rows) * FLOAT
    # dw and db are sums over all rows: their error grows with sqrt(rows)
    given = (torch.empty_like(x), torch.empty(cols), torch.empty(cols))
    return Workload(lambda: kernels.layer_norm_backward(dy, x, w, mean, rstd), reference, moved, 12 * rows * cols,
                    rows * cols, {"rtol": 1e-4, "atol": 1e-4 * math.sqrt(rows)},
                    given_output=lambda: kernels.layer_norm_backward(dy, x, w, mean, rstd, out=given))


def rms_norm(rows: int, cols: int) -> Workload:
    """RMSNorm: PyTorch eager composes it from several ops, each a pass over the tensor (and a fresh tensor)."""
    x, w = _random(rows, cols, seed=14), _random(cols, seed=15)
    given = torch.empty_like(x)
    return Workload(lambda: kernels.rms_norm(x, w), lambda: F.rms_norm(x, (cols,), w, 1e-6),
                    (2 * rows * cols + cols) * FLOAT,
                    4 * rows * cols, rows * cols, {"rtol": 1e-4, "atol": 1e-4},
                    given_output=lambda: kernels.rms_norm(x, w, out=given))


def cross_entropy(rows: int, classes: int) -> Workload:
    """Per-row loss over a vocabulary-sized row: one read of the logits dominates."""
    logits = _random(rows, classes, seed=16)
    target = torch.randint(0, classes, (rows,), generator=torch.Generator().manual_seed(17))
    return Workload(lambda: kernels.cross_entropy(logits, target),
                    lambda: F.cross_entropy(logits, target, reduction="none"),
                    (rows * classes + 3 * rows) * FLOAT, 4 * rows * classes, rows * classes, {"rtol": 1e-5, "atol": 1e-4})


def row_sum(rows: int, cols: int) -> Workload:
    """Row sums: read-only, so a fast kernel may beat the copy roof (which counts a write too)."""
    x = _random(rows, cols, seed=18)
    out, ref = _outputs(torch.empty(rows))
    return Workload(lambda: kernels.row_sum(x, out=out), lambda: torch.sum(x, -1, out=ref),
                    (rows * cols + rows) * FLOAT, rows * cols,
                    rows * cols, {"rtol": 1e-4, "atol": 1e-5 * math.sqrt(cols)})


def row_max(rows: int, cols: int) -> Workload:
    """Row maxima: read-only like the sums, and exact, so no tolerance."""
    x = _random(rows, cols, seed=19)
    out, ref = _outputs(torch.empty(rows))
    return Workload(lambda: kernels.row_max(x, out=out), lambda: torch.amax(x, -1, out=ref),
                    (rows * cols + rows) * FLOAT, rows * cols,
                    rows * cols, {"rtol": 0, "atol": 0})


def cumsum(rows: int, cols: int) -> Workload:
    """Row prefix sums (tl.cumsum): a read and a write per element."""
    x = _random(rows, cols, seed=20)
    out, ref = _outputs(x)
    # a scan's rounding depends on its association order, which differs from ATen's sequential one
    return Workload(lambda: kernels.row_cumsum(x, out=out), lambda: torch.cumsum(x, -1, out=ref),
                    2 * rows * cols * FLOAT, rows * cols,
                    rows * cols, {"rtol": 1e-4, "atol": 2e-6 * cols})


def matmul(m: int, n: int, k: int) -> Workload:
    """fp32 GEMM: 2mnk flops against the sgemm roof; the tolerance grows with k, the length of each sum."""
    a, b = _random(m, k, seed=21), _random(k, n, seed=22)
    out, ref = _outputs(torch.empty(m, n))
    return Workload(lambda: kernels.matmul(a, b, out=out), lambda: torch.mm(a, b, out=ref),
                    (m * k + k * n + m * n) * FLOAT, 2 * m * n * k,
                    m * n, {"rtol": 1e-4, "atol": 1e-5 * k})


def matmul_bf16(m: int, n: int, k: int) -> Workload:
    """bf16 inputs, fp32 accumulation. ATen's bf16 mm (oneDNN) returns bf16, so it is checked against fp32 mm."""
    a, b = _random(m, k, seed=23, dtype=torch.bfloat16), _random(k, n, seed=24, dtype=torch.bfloat16)
    out, ref = torch.empty(m, n), torch.empty(m, n, dtype=torch.bfloat16)
    return Workload(lambda: kernels.matmul(a, b, out=out), lambda: torch.mm(a, b, out=ref),
                    (m * k + k * n) * 2 + m * n * FLOAT, 2 * m * n * k,
                    m * n, {"rtol": 1e-4, "atol": 1e-5 * k}, expected=lambda: torch.mm(a.float(), b.float()))


def attention(batch: int, heads: int, seq_len: int, head_dim: int, causal: bool) -> Workload:
    """Fused attention forward against `scaled_dot_product_attention`; compute-bound at these sequence lengths."""
    q, k, v = (_random(batch, heads, seq_len, head_dim, seed=25 + i) for i in range(3))
    # two products of seq_len^2 x head_dim multiply-adds each; causal masking skips half of them
    flops = 4 * batch * heads * seq_len * seq_len * head_dim // (2 if causal else 1)
    return Workload(lambda: kernels.attention_forward(q, k, v, causal),
                    lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), 4 * q.numel() * FLOAT, flops,
                    batch * heads * seq_len * seq_len, {"rtol": 1e-4, "atol": 1e-4})


# --- the tables ---------------------------------------------------------------------------------------------

def _rows_for(cols: int, elements: int, min_rows: int = 4096) -> int:
    """Rows so a rows x cols fp32 input holds at least `elements` (e.g. 16 Mi elements = 64 MiB)."""
    return max(min_rows, elements // cols)


def _table(quick: bool) -> list[Case]:
    big = 1 << 12 if quick else 1 << 24  # elements in the largest memory-bound inputs: 64 MiB in full mode
    rows_min = 16 if quick else 4096
    cases = [Case("add", f"{big}", MEMORY, lambda: add(big))]
    for softmax_cols in ((128, 1024, 8192) if not quick else (128, 1000)):
        softmax_rows = _rows_for(softmax_cols, big, rows_min)
        cases.append(Case("softmax", f"{softmax_rows}x{softmax_cols}", MEMORY,
                          lambda r=softmax_rows, c=softmax_cols: softmax(r, c)))
    cols = 1024 if not quick else 1000
    rows = _rows_for(cols, big, rows_min)
    shape = f"{rows}x{cols}"  # the normalizations and row reductions share one row shape
    cases += [
        Case("layer_norm_fwd", shape, MEMORY, lambda: layer_norm_forward(rows, cols)),
        Case("layer_norm_bwd", shape, MEMORY, lambda: layer_norm_backward(rows, cols)),
        Case("rms_norm", shape, MEMORY, lambda: rms_norm(rows, cols)),
        Case("gelu", f"{big}", MEMORY, lambda: gelu(big)),
        Case("swiglu", f"{big}", MEMORY, lambda: swiglu(big)),
    ]
    ce_rows, classes = (1024, 32000) if not quick else (8, 1000)
    cases.append(Case("cross_entropy", f"{ce_rows}x{classes}", MEMORY, lambda: cross_entropy(ce_rows, classes)))
    cases += [
        Case("row_sum", shape, MEMORY, lambda: row_sum(rows, cols)),
        Case("row_max", shape, MEMORY, lambda: row_max(rows, cols)),
        Case("cumsum", shape, MEMORY, lambda: cumsum(rows, cols)),
    ]
    for size in ((256, 512, 1000, 1024, 2048, 4096) if not quick else (64, 100)):
        cases.append(Case("matmul", f"{size}x{size}x{size}", COMPUTE, lambda size=size: matmul(size, size, size)))
    for size in ((1024, 2048) if not quick else (64,)):
        cases.append(Case("matmul_bf16", f"{size}x{size}x{size}", COMPUTE, lambda size=size: matmul_bf16(size, size, size)))
    cases += attention_cases("attention", attention, quick)
    from tilebridge.bench import tilelang_cases  # TileLang twins of matmul and attention, where tilelang is installed
    return cases + tilelang_cases.cases(quick)


def attention_cases(kernel: str, build: Callable[..., Workload], quick: bool) -> list[Case]:
    """The suite's attention shapes (head dim 64 and 128, causal and not) for one implementation's `build`."""
    seq_len = 1024 if not quick else 128
    return [Case(kernel, f"1x8x{seq_len}x{head_dim}{' causal' if causal else ''}", COMPUTE,
                 lambda head_dim=head_dim, causal=causal: build(1, 8, seq_len, head_dim, causal))
            for head_dim in (64, 128) for causal in (False, True)]


def all_cases(quick: bool = False) -> list[Case]:
    """Every case of the full suite, or of the quick (CI smoke) suite."""
    return _table(quick)


def kernel_names() -> list[str]:
    """The kernel families, in suite order: the names `--only` accepts besides full case names."""
    return list(dict.fromkeys(case.kernel for case in _table(quick=True)))


# Small inputs for the interpreter comparison: 8 to 64 programs each, so the interpreter needs well
# under a second per call while tilebridge's per-launch cost (about 10 us, most of it triton's own
# dispatch) no longer hides the per-element speed; the same builders as the full cases.
SMALL: dict[str, tuple[str, Callable[[], Workload]]] = {
    "add": ("262144", lambda: add(64 * kernels.ELEMENTWISE_BLOCK)),
    "softmax": ("64x1024", lambda: softmax(64, 1024)),
    "layer_norm_fwd": ("64x1024", lambda: layer_norm_forward(64, 1024)),
    "layer_norm_bwd": ("32x1024", lambda: layer_norm_backward(32, 1024)),
    "rms_norm": ("64x1024", lambda: rms_norm(64, 1024)),
    "gelu": ("262144", lambda: gelu(64 * kernels.ELEMENTWISE_BLOCK)),
    "swiglu": ("262144", lambda: swiglu(64 * kernels.ELEMENTWISE_BLOCK)),
    "cross_entropy": ("32x8192", lambda: cross_entropy(32, 8192)),
    "row_sum": ("64x1024", lambda: row_sum(64, 1024)),
    "row_max": ("64x1024", lambda: row_max(64, 1024)),
    "cumsum": ("64x1024", lambda: cumsum(64, 1024)),
    "matmul": ("256x256x256", lambda: matmul(256, 256, 256)),
    "matmul_bf16": ("256x256x256", lambda: matmul_bf16(256, 256, 256)),
    "attention": ("1x2x256x64", lambda: attention(1, 2, 256, 64, False)),
}
