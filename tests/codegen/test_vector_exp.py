"""exp and exp2 in two forms with the same bits (`tilebridge/codegen/vmath.py`): inline C, and vector
functions that gcc's vectorizer calls (AVX-512 `vscalefps`). An elementwise kernel calls them; a
kernel whose exps feed a reduction keeps the inline form everywhere. Each form is checked against the
other bit for bit over the whole float range (the scalar program of one element a launch computes the
inline form), and both against torch."""
from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl

from tilebridge.codegen import vmath


@triton.jit
def elementwise_exp(x_ptr, out_ptr, n, BASE2: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offsets < n
    x = tl.load(x_ptr + offsets, mask=inside)
    tl.store(out_ptr + offsets, tl.exp2(x) if BASE2 else tl.exp(x), mask=inside)


@triton.jit
def scalar_exp(x_ptr, out_ptr, BASE2: tl.constexpr):
    i = tl.program_id(0)
    x = tl.load(x_ptr + i)
    tl.store(out_ptr + i, tl.exp2(x) if BASE2 else tl.exp(x))


@triton.jit
def softmax_rows(x_ptr, out_ptr, n_cols, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
    e = tl.exp(x - tl.max(x, axis=0))
    tl.store(out_ptr + row * n_cols + cols, e / tl.sum(e, axis=0), mask=cols < n_cols)


def _sweep() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    edges = [float("inf"), -float("inf"), float("nan"), 0.0, -0.0, 88.72283935546875, 88.7228, 88.5, 89.0,
             -87.33654475, -87.4, -103.9, -104.0, 127.0, 127.99999, 128.0, -126.0, -126.5, -149.0, -150.0]
    return torch.cat([torch.linspace(-160.0, 135.0, 1_000_003), torch.randn(300_001, generator=g) * 40,
                      torch.tensor(edges)])


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a.view(torch.int32) == b.view(torch.int32)) | (a.isnan() & b.isnan())).all())


@pytest.mark.parametrize("base2", [False, True])
def test_vector_and_inline_forms_agree_bit_for_bit(base2: bool) -> None:
    x = _sweep()
    vector, inline = torch.empty_like(x), torch.empty_like(x)
    compiled = elementwise_exp[(triton.cdiv(x.numel(), 1000),)](x, vector, x.numel(), BASE2=base2, BLOCK=1024)
    scalar_exp[(x.numel(),)](x, inline, BASE2=base2)
    called = "tb_exp2f_v(" if base2 else "tb_expf_v("
    assert called in compiled.asm["c"]
    assert _same_bits(vector, inline)
    want = torch.exp2(x.double()) if base2 else torch.exp(x.double())
    normal = (want >= 2.0 ** -126) | want.isnan()
    torch.testing.assert_close(vector[normal], want[normal].float(), rtol=2.5e-7, atol=0, equal_nan=True)
    assert (vector[want < 0.99 * 2.0 ** -126] == 0).all()  # flushed to zero, as GPUs' fast exp does


def test_a_kernel_whose_exps_feed_a_sum_keeps_the_inline_form() -> None:
    x = torch.randn(37, 1000, generator=torch.Generator().manual_seed(5)) * 6
    out = torch.empty_like(x)
    compiled = softmax_rows[(37,)](x, out, 1000, BLOCK=1024)
    torch.testing.assert_close(out, torch.softmax(x, 1), rtol=1e-5, atol=1e-7)
    assert "tb_expf(" in compiled.asm["c"] and "tb_expf_v(" not in compiled.asm["c"]


def test_loop_rule() -> None:
    from tilebridge.ir import nodes as nd
    i = nd.Var("i", "i32")
    first = nd.Var("first", "i32")

    def loop(start, stop, body=()) -> nd.For:
        return nd.For(i, start, stop, nd.Const(1, "i32"), list(body), vectorize=True)

    c = lambda v: nd.Const(v, "i32")  # noqa: E731
    assert vmath.loop_calls(loop(c(0), nd.Var("n", "i32")))  # unknown trip: one vector a trip
    assert vmath.loop_calls(loop(c(0), c(16)))  # one vector
    assert not vmath.loop_calls(loop(c(0), c(64)))  # four vectors, peeled whole by gcc
    assert not vmath.loop_calls(loop(first, nd.Binary("add", first, c(64), "i32")))
    lanes = nd.Buffer("lanes", "f32", 16)
    accumulate = nd.BufWrite(lanes, i, nd.Binary("add", nd.BufRead(lanes, i), nd.Const(1.0, "f32"), "f32"))
    assert not vmath.loop_calls(loop(c(0), nd.Var("n", "i32"), [accumulate]))
