"""TileLang GPU-style kernels run unmodified through tilebridge, against torch references on random
inputs; outputs are poisoned with NaN first so an unwritten element shows."""
from __future__ import annotations

import pytest

pytest.importorskip("tilelang", reason="tilelang 0.1.15 is not installed (pip install --no-deps tilelang==0.1.15, "
                                       "then its pure-Python dependencies)")

import tilelang  # noqa: E402
import torch  # noqa: E402

import tilebridge.frontends.tilelang as tilebridge_tilelang  # noqa: E402
from tests.frontends.tilelang import kernels  # noqa: E402


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def poisoned(*shape, dtype=torch.float32):
    return torch.full(shape, float("nan"), dtype=dtype)


@pytest.mark.parametrize("make", [kernels.elementwise_add, kernels.elementwise_add_tiled])
@pytest.mark.parametrize("M, N", [(100, 70), (64, 64), (1, 33)])
def test_elementwise_add(make, M: int, N: int) -> None:
    kernel = tilebridge_tilelang.compile(make(M, N, 32, 32), out_idx=[2])
    a, b = randn(M, N, seed=1), randn(M, N, seed=2)
    torch.testing.assert_close(kernel(a, b), a + b)
    c = poisoned(M, N)
    kernel(a, b, c)  # every parameter passed: the output is written in place
    torch.testing.assert_close(c, a + b)


def test_target_names_and_activate_route_tilelang_compile_here() -> None:
    func = kernels.elementwise_add_tiled(50, 40, 16, 32)
    a, b = randn(50, 40, seed=3), randn(50, 40, seed=4)
    for target in ("tilebridge", "cpu"):
        kernel = tilelang.compile(func, out_idx=[-1], target=target)
        assert isinstance(kernel, tilebridge_tilelang.TileBridgeKernel)
        torch.testing.assert_close(kernel(a, b), a + b)
    tilebridge_tilelang.activate()
    try:
        kernel = tilelang.compile(func, out_idx=[-1])
        assert isinstance(kernel, tilebridge_tilelang.TileBridgeKernel)
    finally:
        tilebridge_tilelang.deactivate()
    source = kernel.get_kernel_source()
    assert "tl_main_launch" in source and "#pragma omp simd" in source


def test_jit_with_symbolic_rows_and_scalar() -> None:
    kernel = kernels.scale_rows(33, 8)
    for rows in (50, 7, 1):
        x = randn(rows, 33, seed=rows)
        torch.testing.assert_close(kernel(x, 2.5), x * 2.5)


@pytest.mark.parametrize("M, N, block_M", [(100, 60, 8), (7, 128, 4)])
def test_softmax(M: int, N: int, block_M: int) -> None:
    kernel = tilebridge_tilelang.compile(kernels.softmax(M, N, block_M), out_idx=[1])
    x = randn(M, N, seed=5) * 4
    torch.testing.assert_close(kernel(x), torch.softmax(x, dim=-1))


def test_rms_norm() -> None:
    M, N = 90, 96
    kernel = tilebridge_tilelang.compile(kernels.rms_norm(M, N, 4), out_idx=[2])
    x, w = randn(M, N, seed=6), randn(N, seed=7)
    y = poisoned(M, N)
    kernel(x, w, y)
    torch.testing.assert_close(y, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w)


def test_column_reductions() -> None:
    M, N = 24, 40
    kernel = tilebridge_tilelang.compile(kernels.column_stats(M, N), out_idx=[1])
    x = randn(M, N, seed=8)
    expected = torch.stack([x.amin(0), x.abs().sum(0), x.sum(0) + 1.0, x.clamp_min(0).amax(0)])
    torch.testing.assert_close(kernel(x), expected)


@pytest.mark.parametrize("N", [90, 256])
def test_row_extremes_skip_nans_from_the_identity(N: int) -> None:
    """Cleared max/min/absmax start from their identity, which joins the maxNum/minNum of every row: NaNs
    lose, and a row of NaNs alone gives the identity (-inf, +inf, 0), as the GPU's fmaxf/fminf do."""
    x = randn(8, N, seed=N)
    nan, inf = float("nan"), float("inf")
    x[1] = nan
    x[2] = nan
    x[2, N // 2] = -inf
    x[3, ::3] = nan
    x[4] = inf
    x[5] = nan
    x[5, -1] = 3.0  # in the tail the lanes leave when N is not a multiple of 16
    x[6] = -inf
    kernel = tilebridge_tilelang.compile(kernels.row_extremes(8, N), out_idx=[1])
    out = kernel(x)
    kept = x.isnan()
    expected = torch.stack([torch.where(kept, -inf, x).amax(1), torch.where(kept, inf, x).amin(1),
                            torch.where(kept, 0.0, x.abs()).amax(1)])
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("N", [90, 256])
def test_row_max_onto_old_values_that_may_be_nan(N: int) -> None:
    """Without clear the old value is one more operand: a NaN old value loses to any number, and only a
    NaN old value with a row of NaNs gives NaN."""
    x = randn(6, N, seed=N + 1)
    nan, inf = float("nan"), float("inf")
    x[0] = nan                        # old NaN, row of NaNs: NaN
    x[1] = nan                        # old 5, row of NaNs: 5
    x[2] = nan
    x[2, 7] = -inf                    # old NaN, NaNs and one -inf: -inf
    x[4] = -inf                       # old NaN, row of -inf: -inf
    old = torch.tensor([nan, 5.0, nan, nan, 100.0, -inf])
    kernel = tilebridge_tilelang.compile(kernels.row_max_onto(6, N), out_idx=[2])
    out = kernel(x, old)
    expected = torch.where(x.isnan(), -inf, x).amax(1).maximum(torch.where(old.isnan(), -inf, old))
    expected[0] = nan
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("M, N, K, trans_B", [(256, 256, 256, False), (200, 130, 100, False), (130, 72, 96, True)])
def test_gemm(M: int, N: int, K: int, trans_B: bool) -> None:
    kernel = tilebridge_tilelang.compile(kernels.matmul(M, N, K, 64, 64, 32, trans_B=trans_B), out_idx=[2])
    a = randn(M, K, seed=9)
    b = randn(N, K, seed=10) if trans_B else randn(K, N, seed=10)
    c = poisoned(M, N)
    kernel(a, b, c)
    torch.testing.assert_close(c, a @ (b.T if trans_B else b), rtol=1e-4, atol=1e-4)
    # B given transposed is taken as it lies and transposed in cache
    assert ("tb_transpose32(" in kernel.get_kernel_source()) == trans_B


def test_gemm_half_inputs_accumulate_in_float() -> None:
    M, N, K = 96, 64, 80
    kernel = tilebridge_tilelang.compile(kernels.matmul(M, N, K, 32, 32, 32, dtype="float16"), out_idx=[2])
    a, b = randn(M, K, seed=11, dtype=torch.float16), randn(K, N, seed=12, dtype=torch.float16)
    expected = (a.float() @ b.float()).half()
    torch.testing.assert_close(kernel(a, b), expected, rtol=2e-3, atol=2e-3)


def test_launch_checks_arguments() -> None:
    kernel = tilebridge_tilelang.compile(kernels.elementwise_add(16, 16, 16, 16), out_idx=[2])
    a = randn(16, 16)
    with pytest.raises(RuntimeError, match="shape"):
        kernel(a, randn(16, 8))
    with pytest.raises(RuntimeError, match="dtype"):
        kernel(a, a.double())
    with pytest.raises(RuntimeError, match="strides"):
        kernel(a, randn(16, 16).T)


def test_atomic_accumulation_across_programs() -> None:
    M, N = 300, 48
    kernel = tilebridge_tilelang.compile(kernels.column_sums_atomic(M, N, 16))
    x = randn(M, N, seed=13)
    sums, total = torch.zeros(N), torch.zeros(1)
    kernel(x, sums, total)
    torch.testing.assert_close(sums, x.sum(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(total, x.sum().reshape(1), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum(reverse: bool) -> None:
    M, N = 20, 37
    kernel = tilebridge_tilelang.compile(kernels.row_cumsum(M, N, 8, reverse=reverse), out_idx=[1])
    x = randn(M, N, seed=14)
    expected = x.flip(1).cumsum(1).flip(1) if reverse else x.cumsum(1)
    torch.testing.assert_close(kernel(x), expected, rtol=1e-5, atol=1e-5)


def test_lazy_style_returns_its_empty_output() -> None:
    a, b = randn(70, 40, seed=15), randn(70, 40, seed=16)
    torch.testing.assert_close(kernels.add_lazy_style(a, b), torch.maximum(a, b) * 2)


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention(causal: bool) -> None:
    batch, heads, seq, dim = 1, 2, 128, 64
    kernel = tilebridge_tilelang.compile(kernels.flash_attention(batch, heads, seq, dim, causal=causal), out_idx=[3])
    q, k, v = (randn(batch, seq, heads, dim, seed=17 + i, dtype=torch.float16) for i in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(
        *(t.transpose(1, 2).float() for t in (q, k, v)), is_causal=causal).transpose(1, 2)
    torch.testing.assert_close(kernel(q, k, v).float(), expected, rtol=1e-2, atol=1e-2)


def test_tilelang_profiler_drives_the_kernel() -> None:
    """`kernel.get_profiler()` is tilelang's own Profiler: it makes the inputs and calls this kernel. It
    synchronizes through torch.cuda, which migration mode maps onto the CPU."""
    import tilebridge
    kernel = tilebridge_tilelang.compile(kernels.softmax(64, 96, 8), out_idx=[1])
    profiler = kernel.get_profiler()
    tilebridge.migrate()
    try:
        profiler.assert_allclose(lambda x: torch.softmax(x, dim=-1), rtol=1e-5, atol=1e-5)
    finally:
        tilebridge.unmigrate()
    assert [list(p.shape) for p in kernel.params] == [[64, 96], [64, 96]]


def test_cast_to_fp8_with_row_scales() -> None:
    M, N = 40, 64
    kernel = tilebridge_tilelang.compile(kernels.row_scaled_cast_to_fp8(M, N, 8), out_idx=[1, 2])
    x = randn(M, N, seed=20) * 10
    y, scales = kernel(x)
    expected_scales = x.abs().amax(1).clamp_min(1e-4) / 448.0
    torch.testing.assert_close(scales, expected_scales)
    expected = (x / expected_scales[:, None]).clamp(-448, 448).to(torch.float8_e4m3fn)
    assert y.dtype == torch.float8_e4m3fn
    assert torch.equal(y.float(), expected.float())  # the same fp32 quotient, rounded to nearest even


def test_two_kernel_scopes_share_a_global_scratch_tensor() -> None:
    M, N = 100, 37
    kernel = tilebridge_tilelang.compile(kernels.center_columns_two_stage(M, N, 16), out_idx=[1])
    assert len(kernel.stages) == 2
    x = randn(M, N, seed=21)
    torch.testing.assert_close(kernel(x), x - x.mean(0), rtol=1e-5, atol=1e-5)


def test_uint8_values_are_unsigned_and_wrap() -> None:
    M, N = 30, 40
    kernel = tilebridge_tilelang.compile(kernels.unsigned_bytes(M, N, 8), out_idx=[2, 3])
    mask = torch.randint(0, 256, (M, N), dtype=torch.uint8, generator=torch.Generator().manual_seed(22))
    x = randn(M, N, seed=23)
    y, z = kernel(mask, x)
    torch.testing.assert_close(y, torch.where(mask > 127, x, 0.0) + mask.float())
    assert torch.equal(z, mask + 200)  # uint8 arithmetic wraps modulo 256 in torch too


def test_bitwise_operations_on_signed_and_unsigned() -> None:
    N = 77
    kernel = tilebridge_tilelang.compile(kernels.bit_ops(N, 32), out_idx=[2, 3])
    generator = torch.Generator().manual_seed(24)
    a = torch.randint(-(1 << 30), 1 << 30, (N,), dtype=torch.int32, generator=generator)
    b = torch.randint(0, 256, (N,), dtype=torch.uint8, generator=generator)
    out, octets = kernel(a, b)
    expected = torch.stack([a & 0xFF0, a | 5, a ^ (a >> 3), ~a, (a & 0xFFFF) << 2])
    assert torch.equal(out, expected)
    assert torch.equal(octets, torch.stack([(b << 3) | (b >> 5), ~b]))
