"""Which loops prefetch (`tilebridge/codegen/prefetch.py` has the measurements): a pass that computes
over a block of at least 8 KiB an earlier pass already read prefetches the next block; single passes,
short blocks and passes that only move data do not. Every kernel also runs and matches torch on
masked, non-power-of-two rows, so a prefetch can never change a result (nor fault past a tensor's end:
the last rows prefetch beyond it)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from tilebridge.bench.kernels import cross_entropy_kernel, softmax_kernel
from tilebridge.codegen import prefetch
from tilebridge.ir import nodes as n


@triton.jit
def two_pass_kernel(x_ptr, out_ptr, n_cols, OP: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
    peak = tl.max(x, axis=0)
    if OP == "softmax":  # max, then exp and sum, then exp and divide: two computing passes re-read x
        e = tl.exp(x - peak)
        tl.store(out_ptr + row * n_cols + cols, e / tl.sum(e, axis=0), mask=cols < n_cols)
    else:  # "shift": the second pass re-reads x but only subtracts
        tl.store(out_ptr + row * n_cols + cols, x - peak, mask=cols < n_cols)


@triton.jit
def single_pass_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offsets, mask=offsets < n)
    tl.store(out_ptr + offsets, x / (1.0 + tl.exp(-x)), mask=offsets < n)


def _rows(rows: int, cols: int) -> torch.Tensor:
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows + cols)) * 4


@pytest.mark.parametrize("op, block, cols, prefetches", [
    ("softmax", 4096, 3001, True),    # 16 KiB blocks: both computing passes prefetch
    ("softmax", 1024, 1000, False),   # 4 KiB blocks: the hardware keeps up, prefetches only cost
    ("shift", 4096, 3001, False),     # the second pass moves data only
])
def test_row_passes(op: str, block: int, cols: int, prefetches: bool) -> None:
    x = _rows(23, cols)
    out = torch.empty_like(x)
    compiled = two_pass_kernel[(23,)](x, out, cols, OP=op, BLOCK=block)
    expected = torch.softmax(x, 1) if op == "softmax" else x - x.amax(1, keepdim=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert ("tb_prefetch(" in compiled.asm["c"]) == prefetches


@pytest.mark.parametrize("block, cols, prefetches", [(2048, 5000, True), (512, 5000, False)])
def test_blocked_reduction_prefetches_the_next_block(block: int, cols: int, prefetches: bool) -> None:
    # the benchmark's cross-entropy: per block of classes a max pass, then an exp pass over the same block
    logits = _rows(19, cols)
    target = torch.randint(0, cols, (19,), generator=torch.Generator().manual_seed(block))
    loss = torch.empty(19)
    compiled = cross_entropy_kernel[(19,)](logits, target, loss, cols, BLOCK=block)
    expected = F.cross_entropy(logits.double(), target, reduction="none").float()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    source = compiled.asm["c"]
    assert ("tb_prefetch(" in source) == prefetches
    if prefetches:  # one block of fp32 ahead
        assert f", {block * 4});" in source


@pytest.mark.parametrize("block, cols, far", [(8192, 5001, True), (1024, 1000, False)])
def test_a_storing_pass_prefetches_two_blocks_ahead(block: int, cols: int, far: bool) -> None:
    """The benchmark's softmax keeps exp(x - max) in its tile, so its last pass only scales and stores:
    with blocks of 8 KiB and more it prefetches x two blocks ahead (the exp pass prefetches one)."""
    x = _rows(21, cols)
    out = torch.empty_like(x)
    compiled = softmax_kernel[(21,)](x, out, cols, x.stride(0), BLOCK=block)
    torch.testing.assert_close(out, torch.softmax(x, 1), rtol=1e-5, atol=1e-6)
    assert (f", {2 * block * 4});" in compiled.asm["c"]) == far


def test_a_single_pass_does_not_prefetch() -> None:
    x = torch.randn(100_003, generator=torch.Generator().manual_seed(3))
    out = torch.empty_like(x)
    compiled = single_pass_kernel[(triton.cdiv(x.numel(), 4096),)](x, out, x.numel(), BLOCK=4096)
    torch.testing.assert_close(out, torch.nn.functional.silu(x), rtol=1e-5, atol=1e-6)
    assert "tb_prefetch(" not in compiled.asm["c"]


def test_plan_needs_an_earlier_read_and_a_constant_extent() -> None:
    x = n.Var("x", "ptr<f32>")
    i = n.Var("i", "i32")
    read = n.MemRead(n.Binary("ptradd", x, n.Cast(i, "i64"), "ptr<f32>"), "f32")
    body = [n.Declare(n.Var("v", "f32"), n.Call("exp", (read,), "f32"))]
    bounded = n.For(i, n.Const(0, "i32"), n.Binary("min", n.Var("cols", "i32"), n.Const(4096, "i32"), "i32"),
                    n.Const(1, "i32"), body, vectorize=True)
    unbounded = n.For(i, n.Const(0, "i32"), n.Var("cols", "i32"), n.Const(1, "i32"), body, vectorize=True)
    assert prefetch.plan(bounded, {x}) == {x: 16384}
    assert prefetch.plan(bounded, set()) == {}
    assert prefetch.plan(unbounded, {x}) == {}
    assert prefetch.streams(bounded, {x: 16384}) == [(read, 16384)]


def test_far_plan_needs_a_storing_pass_that_reads_none_of_the_streams() -> None:
    x, out, tile = n.Var("x", "ptr<f32>"), n.Var("out", "ptr<f32>"), n.Buffer("t", "f32", 4096)
    i = n.Var("i", "i32")
    at = lambda p: n.Binary("ptradd", p, n.Cast(i, "i64"), "ptr<f32>")  # noqa: E731
    stop = n.Cast(n.Binary("max", n.Binary("min", n.Const(4096, "i64"), n.Var("cols", "i64"), "i64"),
                           n.Const(0, "i64"), "i64"), "i32", "")  # a masked tile's clamped bound
    storing = n.For(i, n.Const(0, "i32"), stop, n.Const(1, "i32"), [n.MemWrite(at(out), n.BufRead(tile, i))], vectorize=True)
    rereading = n.For(i, n.Const(0, "i32"), stop, n.Const(1, "i32"), [n.MemWrite(at(out), n.MemRead(at(x), "f32"))],
                      vectorize=True)
    read = n.MemRead(at(x), "f32")
    assert prefetch.contiguous_reads(rereading) == {x: read}
    assert prefetch.far_plan(storing, {x: read}) == {x: (2 * 4096 * 4, "f32")}
    assert prefetch.far_plan(rereading, {x: read}) == {}
    assert prefetch.far_plan(storing, {}) == {}
