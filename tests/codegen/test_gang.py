"""Programs in lockstep (`tilebridge/ir/gang.py`): which kernels a thread runs two programs at a time,
and that every ganged kernel computes what it computes one program at a time: odd and tiny grids
(the leftover programs), 3-D grids (each instance steps its own x, y, z), loops and branches that
differ between programs, tiles in the arena, NaNs. `forced` gangs kernels the suite would not, so the
pass is checked on stores, branches and loops it leaves alone in production."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from tilebridge.codegen import c
from tilebridge.ir import gang
from tilebridge.ir import nodes as n


@triton.jit
def row_reduce_kernel(x_ptr, out_ptr, n_cols, OP: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    total = tl.zeros((BLOCK,), dtype=tl.float32) if OP == "sum" else tl.full((BLOCK,), -float("inf"), tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        if OP == "sum":
            total += tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0)
        else:
            total = tl.maximum(total, tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=-float("inf")))
    tl.store(out_ptr + row, tl.sum(total, axis=0) if OP == "sum" else tl.max(total, axis=0))


@triton.jit
def row_exp_sum_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
    tl.store(out_ptr + row, tl.sum(tl.exp(x), axis=0))


@triton.jit
def row_block_kernel(x_ptr, out_ptr, M, N, OP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # BLOCK_M rows a program: its results leave through a short store loop
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    inside = (rows[:, None] < M) & (cols[None, :] < N)
    if OP == "sum":
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * N + cols[None, :], mask=inside, other=0.0)
        tl.store(out_ptr + rows, tl.sum(x, axis=1), mask=rows < M)
    else:
        x = tl.load(x_ptr + rows[:, None].to(tl.int64) * N + cols[None, :], mask=inside, other=-float("inf"))
        tl.store(out_ptr + rows, tl.max(x, axis=1), mask=rows < M)


@triton.jit
def grid3_sum_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    # one row per (x, y, z) program, rows numbered z-major as torch lays out x[z, y, x, :]
    row = ((tl.program_id(2) * tl.num_programs(1) + tl.program_id(1)) * tl.num_programs(0) + tl.program_id(0)).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    tl.store(out_ptr + row, tl.sum(tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0), axis=0))


@triton.jit
def ragged_sum_kernel(x_ptr, lengths_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    # each program sums its own number of blocks, and negates odd rows: a loop and a branch per program
    row = tl.program_id(0)
    length = tl.load(lengths_ptr + row)
    total = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, length, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        total += tl.load(x_ptr + row.to(tl.int64) * n_cols + cols, mask=cols < length, other=0.0)
    result = tl.sum(total, axis=0)
    if row % 2 == 1:
        result = -result
    tl.store(out_ptr + row, result)


@triton.jit
def row_softmax_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
    e = tl.exp(x - tl.max(x, axis=0))
    tl.store(out_ptr + row * n_cols + cols, e / tl.sum(e, axis=0), mask=cols < n_cols)


@triton.jit
def atomic_total_kernel(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    tl.atomic_add(out_ptr, tl.sum(tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=0.0), axis=0))


def _rows(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed + rows * 7919 + cols))


def ganged(compiled) -> bool:
    return "_gang(" in compiled.asm["c"]


@pytest.fixture
def forced(monkeypatch):
    """Gang every kernel the pass accepts, not only those whose loads it would interleave."""
    monkeypatch.setattr(c, "gang_factor", lambda kernel: c.GANG if gang.gangable(kernel) else 1)


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8, 23, 1001])
@pytest.mark.parametrize("op", ["sum", "max"])
def test_row_reductions_run_in_pairs(rows: int, op: str) -> None:
    cols = 1000
    x = _rows(rows, cols)
    x[rows // 2, 17] = float("nan")  # tl.max skips NaNs (maxNum); the sum carries it
    out = torch.full((rows,), 7.0)
    compiled = row_reduce_kernel[(rows,)](x, out, cols, OP=op, BLOCK=256)
    assert ganged(compiled)
    if op == "sum":
        torch.testing.assert_close(out, x.double().sum(1).float(), rtol=1e-5, atol=1e-4, equal_nan=True)
    else:
        assert torch.equal(out, x.nan_to_num(-float("inf")).amax(1))


@pytest.mark.parametrize("op, block_m, ganged_too", [("sum", 4, True), ("max", 16, True), ("sum", 256, False)])
def test_blocks_of_rows_with_their_few_results(op: str, block_m: int, ganged_too: bool) -> None:
    rows, cols = 1003, 300  # the last block is partial: its store loop and loads are masked
    x = _rows(rows, cols, seed=12).abs() * (1 if op == "sum" else -1)  # a max of negatives: a 0.0 in a lane would win
    out = torch.full((rows,), float("nan"))
    compiled = row_block_kernel[(triton.cdiv(rows, block_m),)](x, out, rows, cols, OP=op, BLOCK_M=block_m, BLOCK_N=512)
    assert ganged(compiled) == ganged_too  # 256 results a program: more than a few (SMALL_STORE)
    expected = x.double().sum(1).float() if op == "sum" else x.amax(1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


def test_reductions_that_compute_stay_one_program_at_a_time() -> None:
    x = _rows(17, 1000, seed=4)
    out = torch.empty(17)
    compiled = row_exp_sum_kernel[(17,)](x, out, 1000, BLOCK=1024)
    assert not ganged(compiled)  # an exp per element: the second stream would buy little, the compile time doubles
    torch.testing.assert_close(out, x.double().exp().sum(1).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid", [(3, 4, 5), (1, 1, 7), (5, 1, 1), (2, 3, 1)])
def test_each_instance_steps_its_own_program_ids(grid: tuple) -> None:
    cols = 77
    x = _rows(grid[0] * grid[1] * grid[2], cols, seed=3)
    out = torch.full((x.shape[0],), float("nan"))
    compiled = grid3_sum_kernel[grid](x, out, cols, BLOCK=128)
    assert ganged(compiled)
    torch.testing.assert_close(out, x.double().sum(1).float(), rtol=1e-5, atol=1e-5)


def test_loops_and_branches_that_differ_between_programs() -> None:
    rows, cols = 37, 700
    x = _rows(rows, cols, seed=5)
    lengths = torch.randint(0, cols + 1, (rows,), generator=torch.Generator().manual_seed(9), dtype=torch.int32)
    lengths[:3] = torch.tensor([0, cols, 1], dtype=torch.int32)
    out = torch.full((rows,), float("nan"))
    compiled = ragged_sum_kernel[(rows,)](x, lengths, out, cols, BLOCK=64)
    expected = torch.stack([x[r, :int(lengths[r])].double().sum() for r in range(rows)]).float()
    expected[1::2] *= -1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)
    assert not ganged(compiled)  # its only reading loop has a per-program trip count: nothing to interleave


def test_forced_gang_of_per_program_loops(forced) -> None:
    rows, cols = 29, 500
    x = _rows(rows, cols, seed=6)
    lengths = torch.randint(0, cols + 1, (rows,), generator=torch.Generator().manual_seed(10), dtype=torch.int32)
    out = torch.full((rows,), float("nan"))
    compiled = ragged_sum_kernel[(rows,)](x, lengths, out, cols, BLOCK=32)
    assert ganged(compiled)
    expected = torch.stack([x[r, :int(lengths[r])].double().sum() for r in range(rows)]).float()
    expected[1::2] *= -1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cols, block", [(1000, 1024), (5000, 8192)])  # 8192 fp32 tiles live in the arena
def test_kernels_that_store_rows_stay_one_program_at_a_time(cols: int, block: int) -> None:
    x = _rows(11, cols, seed=7)
    out = torch.empty_like(x)
    compiled = row_softmax_kernel[(11,)](x, out, cols, BLOCK=block)
    assert not ganged(compiled)
    torch.testing.assert_close(out, torch.softmax(x, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cols, block", [(1000, 2048), (5000, 16384)])  # not the blocks above: a fresh compile
def test_forced_gang_of_stores_and_arena_tiles(forced, cols: int, block: int) -> None:
    x = _rows(13, cols, seed=8)
    out = torch.empty_like(x)
    compiled = row_softmax_kernel[(13,)](x, out, cols, BLOCK=block)
    assert ganged(compiled)
    torch.testing.assert_close(out, torch.softmax(x, 1), rtol=1e-5, atol=1e-6)


def test_atomics_keep_programs_one_at_a_time(forced) -> None:
    x = torch.randint(-8, 9, (21, 100), generator=torch.Generator().manual_seed(11)).float()
    out = torch.zeros(1)
    compiled = atomic_total_kernel[(21,)](x, out, 100, BLOCK=128)
    assert not ganged(compiled)
    assert out.item() == x.sum().item()


def test_uniformity() -> None:
    i32 = "i32"
    pid, cols = n.Var("tb_pid_x", i32), n.Var("a_n", i32)
    width, row, flag = n.Var("width", i32), n.Var("row", i32), n.Var("flag", i32)
    loop_var = n.Var("k", i32)
    body = [
        n.Declare(width, n.Binary("mul", cols, n.Const(2, i32), i32)),  # from launch arguments only
        n.Declare(row, n.Binary("mul", pid, width, i32)),                # from the program id
        n.Declare(flag, n.Const(0, i32)),
        n.If(n.Binary("lt", row, cols, "i1"), [n.Assign(flag, n.Const(1, i32))]),  # set per program
        n.For(loop_var, n.Const(0, i32), width, n.Const(1, i32), []),
    ]
    uniform = gang.Uniformity(body)
    assert uniform.varying == {*gang.PROGRAM_IDS, "row", "flag"}
    assert uniform.jammed(body[4]) and not uniform.jammed(body[3])
