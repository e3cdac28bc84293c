"""Elementwise operators against float64 (and ATen for integers): odd shapes, strides, broadcasting, out=, in-place.

Each case runs with the library on and checks the op was *served* by a tilebridge kernel, so a silent
fallback to ATen cannot pass for a working kernel. Shapes are not powers of two, so the last block of
every kernel is masked.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import triton

from tests.ops.conftest import noncontiguous, random
from tilebridge.integrations.torch.aten import bypassed

TOLERANCE = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}
SHAPE = (37, 13)

# name, the computation, the overload that must be served, number of tensor inputs, dtypes
CASES = [
    ("exp", lambda x: torch.exp(x), "exp", 1, (torch.float32, torch.bfloat16)),
    ("sqrt", lambda x: torch.sqrt(x.abs()), "sqrt", 1, (torch.float32, torch.float16)),
    ("sigmoid", torch.sigmoid, "sigmoid", 1, (torch.float32, torch.bfloat16)),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), "gelu", 1, (torch.float32,)),
    ("silu", F.silu, "silu", 1, (torch.float32, torch.float16)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), "leaky_relu", 1, (torch.float32,)),
    ("add_alpha", lambda a, b: torch.add(a, b, alpha=-1.5), "add.Tensor", 2, (torch.float32, torch.bfloat16)),
    ("mul_scalar", lambda a: a * 0.37, "mul.Tensor", 1, (torch.float32, torch.float16)),
    ("div", torch.div, "div.Tensor", 2, (torch.float32,)),
    ("maximum", torch.maximum, "maximum", 2, (torch.float32,)),
    ("where", lambda a, b: torch.where(a > b, a, b * 2), "where.self", 2, (torch.float32,)),
    ("clamp", lambda x: torch.clamp(x, -0.5, 1.25), "clamp", 1, (torch.float32, torch.bfloat16)),
]


def _reference(fn, inputs, dtype):
    with bypassed():
        return fn(*(t.double() for t in inputs)).to(dtype)


@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
@pytest.mark.parametrize("name,fn,overload,arity,dtypes", CASES, ids=[c[0] for c in CASES])
def test_against_float64(library, generator, name, fn, overload, arity, dtypes, strided):
    for dtype in dtypes:
        inputs = [random(SHAPE, dtype, generator) for _ in range(arity)]
        if strided:
            inputs = [noncontiguous(t) for t in inputs]
            assert not inputs[0].is_contiguous()
        library["served"].clear()
        result = fn(*inputs)
        assert library["served"][overload] >= 1, f"{overload} was not served: {dict(library['served'])}"
        expected = _reference(fn, inputs, dtype)
        assert result.dtype == dtype and result.shape == SHAPE
        torch.testing.assert_close(result, expected, atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])


def test_broadcasting_and_promotion(library, generator):
    a = random((5, 1, 7), torch.float16, generator)
    b = random((3, 1), torch.float32, generator)
    result = a + b  # float16 (5,1,7) + float32 (3,1) -> float32 (5,3,7)
    assert result.dtype == torch.float32 and result.shape == (5, 3, 7)
    torch.testing.assert_close(result, (a.double() + b.double()).float())
    ints = random((4, 9), torch.int32, generator)
    halves = ints / 2  # integer true division gives the default float dtype
    assert halves.dtype == torch.float32
    torch.testing.assert_close(halves, ints.double().div(2).float())
    small = random((11,), torch.int8, generator) * 14
    wrapped = small * 3  # int8 wraps as in ATen
    assert torch.equal(wrapped, torch.tensor([(v * 3 + 128) % 256 - 128 for v in small.tolist()], dtype=torch.int8))
    assert library["served"]["add.Tensor"] and library["served"]["div.Tensor"] and library["served"]["mul.Tensor"]


@pytest.mark.parametrize("dtype", [torch.int64, torch.int16, torch.uint8, torch.bool])
def test_integer_and_bool_exact(library, generator, dtype):
    a, b = random((19, 6), dtype, generator), random((19, 6), dtype, generator)
    with bypassed():
        expected = [a & b, a == b, torch.logical_xor(a, b), torch.where(a > b, a, b)]
    result = [a & b, a == b, torch.logical_xor(a, b), torch.where(a > b, a, b)]
    for got, want in zip(result, expected):
        assert got.dtype == want.dtype and torch.equal(got, want)
    assert library["served"]["bitwise_and.Tensor"] and library["served"]["eq.Tensor"] and library["served"]["where.self"]


def test_out_and_inplace_variants(library, generator):
    x, y = random((23, 5), torch.float32, generator), random((5,), torch.float32, generator)
    out = torch.full((23, 5), float("nan"))
    torch.mul(x, y, out=out)
    torch.testing.assert_close(out, (x.double() * y.double()).float())
    target = noncontiguous(x.clone())
    target.add_(y, alpha=2)
    torch.testing.assert_close(target, (x.double() + 2 * y.double()).float())
    assert library["served"]["mul.out"] == 1 and library["served"]["add_.Tensor"] == 1
    half_out = torch.empty(23, 5, dtype=torch.float16)
    torch.exp(x, out=half_out)  # out= of a lower dtype: computed in float32, stored rounded
    torch.testing.assert_close(half_out, x.double().exp().half(), atol=1e-3, rtol=1e-3)
    masked = x.clone().masked_fill_(x > 0.5, -7.0)
    torch.testing.assert_close(masked, torch.where(x > 0.5, torch.tensor(-7.0), x))
    assert library["served"]["masked_fill_.Scalar"] == 1
    with pytest.raises(RuntimeError):  # ATen's error, not a TypeError from the wrapper
        x.clone().masked_fill_(x > 0.5, 1 + 2j)


def test_inplace_baddbmm(library, generator):
    """baddbmm_ names its operands batch1/batch2 like baddbmm (the in-place overload once looked for mat1)."""
    c, a, b = (random(shape, torch.float32, generator) for shape in ((3, 7, 9), (3, 7, 11), (3, 11, 9)))
    want = 0.5 * c.double() + 2 * (a.double() @ b.double())
    c.baddbmm_(a, b, beta=0.5, alpha=2)
    torch.testing.assert_close(c, want.float(), atol=1e-5, rtol=1e-5)
    assert library["served"]["baddbmm_"] == 1


def test_more_than_four_dimensions_and_empty(library, generator):
    x = random((2, 3, 2, 3, 5, 3), torch.float32, generator).permute(5, 3, 1, 0, 2, 4)
    torch.testing.assert_close(torch.neg(x), -x.double().float())
    assert torch.exp(torch.empty(0, 3)).shape == (0, 3)


def test_special_values(library):
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1.5, -2.5])
    assert torch.equal(torch.isnan(torch.relu(x)), torch.isnan(x))
    torch.testing.assert_close(torch.nan_to_num(x), torch.tensor([0.0, 3.4028234663852886e38, -3.4028234663852886e38,
                                                                  -0.0, 0.0, 1.5, -2.5]))
    assert torch.equal(torch.signbit(x), torch.tensor([False, False, True, True, False, False, True]))
    assert torch.isnan(torch.maximum(x, torch.zeros(7))[0])
    assert torch.fmax(x, torch.zeros(7))[0] == 0


def test_operand_layouts(library, generator):
    """Each tensor of a pointwise kernel is read as its layout allows: contiguous ("c"), one element for
    every index (a Python scalar, a broadcast 0-dim tensor: "s"), or through its strides ("g"); every
    mix of the three, the output too, on a masked length."""
    from tilebridge.ops.strided import Layout

    x = random((37, 130), torch.float32, generator)
    scalar, row, column = torch.tensor(1.75), random((130,), torch.float32, generator), random((37, 1), torch.float32, generator)
    cases = [  # (result, float64 reference): kinds ccs, ccs, csc, ccg, cgg, cccs, cs
        (lambda: x * 1.5, lambda: x.double() * 1.5), (lambda: x + scalar, lambda: x.double() + 1.75),
        (lambda: scalar - x, lambda: 1.75 - x.double()), (lambda: x * row, lambda: x.double() * row.double()),
        (lambda: x.t() / column.t(), lambda: x.double().t() / column.double().t()),
        (lambda: torch.where(x > 0, x, 0.0), lambda: torch.where(x > 0, x.double(), 0.0)),
        (lambda: torch.exp(scalar.expand(37, 130)), lambda: torch.exp(scalar.double()).expand(37, 130)),
    ]
    for result, reference in cases:
        torch.testing.assert_close(result().double(), reference(), rtol=1e-6, atol=1e-6)
    assert Layout(torch.empty(37, 130), [x, scalar.expand(37, 130)]).kinds == "ccs"
    assert Layout(torch.empty(37, 130), [x, row.expand(37, 130)]).kinds == "ccg"
    assert Layout(torch.empty(130, 37), [x.t(), column.t().expand(130, 37)]).kinds == "cgg"
    out = torch.empty(130, 37).t()  # a strided output
    torch.mul(x, scalar, out=out)
    torch.testing.assert_close(out.double(), x.double() * 1.75)
    assert Layout(out, [x, scalar.expand(37, 130)]).kinds == "gcs"
    assert torch.neg(torch.zeros(5)).signbit().all()  # -0.0, as ATen's neg gives, not 0 - 0.0
    assert library["served"]["mul.Tensor"] >= 2 and library["served"]["neg"] == 1


@pytest.mark.parametrize("m, n, k, batch", [(600, 700, 300, 1), (513, 260, 1000, 1), (130, 90, 70, 5), (40, 33, 9, 3),
                                            (76, 200, 384, 1), (7, 300, 100, 1), (200, 130, 76, 1)])
def test_matmul_tile_sizes(library, generator, m, n, k, batch):
    """Products large enough for 256 x 256 tiles and smaller ones (16-, 32- and 128-row tiles), K steps
    clipped to K, masked edges, a transposed weight (F.linear) and a batch."""
    from tilebridge.ops.matmul import blocks_for

    a, w = random((batch, m, k), torch.float32, generator), random((n, k), torch.float32, generator)
    bias = random((n,), torch.float32, generator)
    got = torch.bmm(a, w.t().expand(batch, k, n)) if batch > 1 else F.linear(a[0], w, bias)
    want = (a.double() @ w.double().t()) if batch > 1 else F.linear(a[0].double(), w.double(), bias.double())
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * k ** 0.5)
    assert blocks_for(m, n, k, batch)[2] <= max(16, triton.next_power_of_2(k))
    assert library["served"]["bmm" if batch > 1 else "addmm"] == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows, m, n", [(76, 384, 200), (300, 70, 513)])
def test_matmul_of_transposed_operands(library, generator, dtype, rows, m, n):
    """A weight's gradient, g^T @ x: A lies transposed in memory (taken as it lies, transposed in cache
    for fp32); and both operands transposed."""
    g, x = random((rows, m), dtype, generator), random((rows, n), dtype, generator)
    tolerance = dict(rtol=1e-4, atol=1e-4 * rows ** 0.5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(torch.mm(g.t(), x).double(), g.double().t() @ x.double(), **tolerance)
    y = random((n, rows), dtype, generator)
    torch.testing.assert_close(torch.mm(g.t(), y.t()).double(), g.double().t() @ y.double().t(), **tolerance)
    assert library["served"]["mm"] == 2


def test_reductions_softmax_layer_norm_matmul(library, generator):
    """One strided case per family; the harness runs PyTorch's own samples for the rest."""
    x = noncontiguous(random((6, 37, 5), torch.float32, generator))
    xd = x.double()
    checks = [
        (x.sum((0, 2)), xd.sum((0, 2))), (x.mean(1, keepdim=True), xd.mean(1, keepdim=True)), (x.amax(-1), xd.amax(-1)),
        (x.var(1), xd.var(1)), (torch.logsumexp(x, 1), torch.logsumexp(xd, 1)), (torch.softmax(x, 1), torch.softmax(xd, 1)),
        (torch.nn.functional.layer_norm(x, (5,)), torch.nn.functional.layer_norm(xd, (5,))),
        (x[0] @ x[1].t(), xd[0] @ xd[1].t()),
    ]
    for got, want in checks:
        torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=1e-5)
    assert torch.equal(x.argmax(1), xd.argmax(1))
    for overload in ("sum.dim_IntList", "mean.dim", "amax", "var.correction", "logsumexp", "_softmax", "native_layer_norm", "mm",
                     "argmax"):
        assert library["served"][overload], overload
