"""Generated kernels, compiled by tilebridge, against Triton's interpreter.

Elementwise expression trees over every dtype the backend claims, masked non-power-of-two
blocks, reductions along either axis, and scans. Seeds are fixed so a failure reproduces.
"""
import random

import pytest
import torch

from tests.oracle import Case, Oracle

FLOAT_OPS = ["({a} + {b})", "({a} - {b})", "({a} * {b})", "({a} / (tl.abs({b}) + 1.5))", "tl.maximum({a}, {b})",
             "tl.minimum({a}, {b})", "tl.where({a} > {b}, {a}, {b} * 0.5)", "tl.exp({a} * 0.1)", "tl.sin({a})",
             "tl.cos({b})", "tl.sqrt(tl.abs({a}))", "tl.abs({a})", "(-{a})", "tl.sigmoid({a})",
             "tl.log(tl.abs({a}) + 1.0)", "tl.fma({a}, {b}, {a})", "tl.floor({a})", "tl.ceil({b})", "tl.exp2({b} * 0.3)"]
INT_OPS = ["({a} + {b})", "({a} - {b})", "({a} * {b})", "({a} // (({b} & 7) + 1))", "({a} % (({b} & 7) + 1))",
           "({a} & {b})", "({a} | {b})", "({a} ^ {b})", "({a} << ({b} & 3))", "({a} >> ({b} & 3))",
           "tl.maximum({a}, {b})", "tl.minimum({a}, {b})", "tl.where({a} > {b}, {a}, {b})", "(-{a})", "tl.abs({a})"]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
          "int32": torch.int32, "int64": torch.int64, "int8": torch.int8, "int16": torch.int16}


def random_expr(rng: random.Random, ops: list, depth: int) -> str:
    if depth == 0:
        return rng.choice(["x", "y"])
    op = rng.choice(ops)
    return op.format(a=random_expr(rng, ops, depth - 1), b=random_expr(rng, ops, depth - 1))


def make_input(dtype: torch.dtype, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype.is_floating_point:
        return (torch.randn(n, generator=g, dtype=torch.float64) * 2).to(dtype)
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    return torch.randint(lo, hi, (n,), generator=g, dtype=dtype)


ORACLE = Oracle()


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def elementwise_case(dtype_name: str, seed: int) -> Case:
    dtype = DTYPES[dtype_name]
    rng = random.Random(f"{dtype_name}-{seed}")
    ops = FLOAT_OPS if dtype.is_floating_point else INT_OPS
    if dtype in (torch.float16, torch.bfloat16):  # Triton's math functions take fp32/fp64 only
        ops = [o for o in ops if not any(f in o for f in ("exp", "sin", "cos", "sqrt", "log", "sigmoid", "floor",
                                                             "ceil"))]
    expr = random_expr(rng, ops, 3)
    source = f'''
import triton
import triton.language as tl


@triton.jit
def kernel(X, Y, Out, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask, other=1)
    y = tl.load(Y + offs, mask=mask, other=2)
    r = {expr}
    tl.store(Out + offs, r.to(Out.dtype.element_ty), mask=mask)
'''
    n = 1000 + seed * 37
    x, y = make_input(dtype, n, seed), make_input(dtype, n, seed + 100)
    out = torch.empty(n, dtype=dtype)
    return Case(source, "kernel", (triton_cdiv(n, 256),), [x, y, out, n], [2], dict(BLOCK=256),
                oracle_dtype=torch.float32 if dtype == torch.bfloat16 else None)


ELEMENTWISE = [f"{name}-{seed}" for name in DTYPES for seed in range(4)]
for key in ELEMENTWISE:
    ORACLE.add("ew-" + key, elementwise_case(*key.rsplit("-", 1)[:1], int(key.rsplit("-", 1)[1])))


@pytest.mark.parametrize("key", ELEMENTWISE)
def test_elementwise_chain(key: str) -> None:
    ORACLE.check("ew-" + key)


REDUCTIONS = ["tl.sum(x, axis={axis})", "tl.max(x, axis={axis})", "tl.min(x, axis={axis})",
              "tl.argmax(x, axis={axis})", "tl.argmin(x, axis={axis})", "tl.cumsum(x, axis={axis})",
              "tl.cumprod(x * 0.01 + 1, axis={axis})", "tl.xor_sum(x.to(tl.int32), axis={axis})"]


def reduction_case(reduction: str, axis: int, dtype_name: str) -> Case:
    dtype = DTYPES[dtype_name]
    scan = "cum" in reduction
    source = f'''
import triton
import triton.language as tl


@triton.jit
def kernel(X, Out, M, N, BM: tl.constexpr, BN: tl.constexpr):
    rm = tl.arange(0, BM)
    rn = tl.arange(0, BN)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    x = tl.load(X + rm[:, None] * N + rn[None, :], mask=mask, other=0)
    r = {reduction.format(axis=axis)}
    {"tl.store(Out + rm[:, None] * N + rn[None, :], r.to(Out.dtype.element_ty), mask=mask)" if scan else
     ("tl.store(Out + rn, r.to(Out.dtype.element_ty), mask=rn < N)" if axis == 0 else
      "tl.store(Out + rm, r.to(Out.dtype.element_ty), mask=rm < M)")}
'''
    M, N = 13, 21
    x = make_input(dtype, M * N, 7).reshape(M, N)
    out_dtype = torch.int32 if ("arg" in reduction or "xor" in reduction) else dtype
    out = torch.empty((M, N) if scan else ((N,) if axis == 0 else (M,)), dtype=out_dtype)
    return Case(source, "kernel", (1,), [x, out, M, N], [1], dict(BM=16, BN=32))


# cumprod of integers overflows: not a meaningful comparison
REDUCTION_KEYS = [(r, axis, d) for r in REDUCTIONS for axis in (0, 1) for d in ("float32", "int32")
                  if not (d == "int32" and "cumprod" in r)]
for r, axis, d in REDUCTION_KEYS:
    ORACLE.add(f"red-{r}-{axis}-{d}", reduction_case(r, axis, d))


@pytest.mark.parametrize("reduction,axis,dtype_name", REDUCTION_KEYS)
def test_reductions_and_scans(reduction: str, axis: int, dtype_name: str) -> None:
    ORACLE.check(f"red-{reduction}-{axis}-{dtype_name}")


LONG_ROW_SOURCE = """
import triton
import triton.language as tl


@triton.jit
def kernel(X, Sum, Max, Arg, Cum, N, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    # one load per reduction, so each is folded straight from memory (a shared tile would be copied first)
    tl.store(Sum + row, tl.sum(tl.load(X + row * N + cols, mask=cols < N, other=0.0), axis=0))
    tl.store(Max + row, tl.max(tl.load(X + row * N + cols, mask=cols < N, other=-float("inf")), axis=0))
    tl.store(Arg + row, tl.argmax(tl.load(X + row * N + cols, mask=cols < N, other=-float("inf")), axis=0))
    cum = tl.cumsum(tl.load(X + row * N + cols, mask=cols < N, other=0.0), axis=0)
    tl.store(Cum + row * N + cols, cum, mask=cols < N)
"""
# rows long enough for the 64- and 16-lane partial sums, with the mask ending inside, at, or past a chunk
LONG_ROWS = [1000, 1020, 1024, 100, 250, 64, 40, 130]
for cols in LONG_ROWS:
    ORACLE.add(f"long-row-{cols}", Case(LONG_ROW_SOURCE, "kernel", (3,), [make_input(torch.float32, 3 * cols, cols),
                                        torch.empty(3), torch.empty(3), torch.empty(3, dtype=torch.int32),
                                        torch.empty(3 * cols), cols], [1, 2, 3, 4], dict(BLOCK=1 << (cols - 1).bit_length()),
                                        tolerance=dict(rtol=1e-5, atol=2e-6 * cols)))


@pytest.mark.parametrize("cols", LONG_ROWS)
def test_long_row_reductions(cols: int) -> None:
    ORACLE.check(f"long-row-{cols}")


WINDOW_SOURCE = """
import triton
import triton.language as tl


@triton.jit
def kernel(X, Out, lo, hi, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    window = (offs >= lo) & (offs < hi)
    x = tl.load(X + offs, mask=window, other=-1.0)
    total = tl.sum(x, axis=0)
    tl.store(Out + offs, x * 2 + total * 0.001, mask=offs < n)
"""
WINDOWS = [(0, 1000), (37, 1000), (100, 640), (300, 200), (700, 1000)]  # windows past whole blocks too
for lo, hi in WINDOWS:
    ORACLE.add(f"window-{lo}-{hi}", Case(WINDOW_SOURCE, "kernel", (4,), [make_input(torch.float32, 1024, 3),
                                          torch.empty(1024), lo, hi, 1000], [1], dict(BLOCK=256)))


@pytest.mark.parametrize("lo,hi", WINDOWS)
def test_masks_with_lower_and_upper_bounds(lo: int, hi: int) -> None:
    ORACLE.check(f"window-{lo}-{hi}")
