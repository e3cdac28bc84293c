"""Per-thread emulation of SIMT-style TileLang kernels against torch references on random inputs, with
sizes that are not multiples of the thread counts; outputs poisoned with NaN first."""
from __future__ import annotations

import pytest

pytest.importorskip("tilelang", reason="tilelang 0.1.15 is not installed")

import torch  # noqa: E402

import tilebridge.frontends.tilelang as tilebridge_tilelang  # noqa: E402
from tests.frontends.tilelang import simt_kernels as kernels  # noqa: E402
from tests.frontends.tilelang.test_kernels import poisoned, randn  # noqa: E402


@pytest.mark.parametrize("N", [64, 48])
def test_one_element_per_thread(N: int) -> None:
    kernel = tilebridge_tilelang.compile(kernels.double_in_place(N))
    x = randn(N, seed=1)
    expected = x * 2
    kernel(x)
    torch.testing.assert_close(x, expected)


@pytest.mark.parametrize("M, K, rows", [(100, 70, 32), (33, 130, 16)])
def test_cooperative_shared_load_is_finished_before_it_is_read(M: int, K: int, rows: int) -> None:
    kernel = tilebridge_tilelang.compile(kernels.matvec_shared_vector(M, K, rows), out_idx=[2])
    a, x = randn(M, K, seed=2), randn(K, seed=3)
    torch.testing.assert_close(kernel(a, x), a @ x, rtol=1e-4, atol=1e-4)
    source = kernel.get_ir()
    assert source.count("for tx_") >= 2  # the shared load and the products are separate thread regions


@pytest.mark.parametrize("N, steps", [(32, 5), (24, 24)])
def test_values_rotate_through_shared_memory_step_by_step(N: int, steps: int) -> None:
    kernel = tilebridge_tilelang.compile(kernels.rotate_through_shared(N, steps), out_idx=[1])
    x = randn(N, seed=4)
    torch.testing.assert_close(kernel(x), torch.roll(x, -steps))


@pytest.mark.parametrize("M, N, lanes, rows", [(37, 100, 16, 4), (8, 8, 32, 2)])
def test_thread_allreduce_combines_lanes(M: int, N: int, lanes: int, rows: int) -> None:
    kernel = tilebridge_tilelang.compile(kernels.row_max_allreduce(M, N, lanes, rows))
    x, out = randn(M, N, seed=5), poisoned(M)
    kernel(x, out)
    torch.testing.assert_close(out, x.amax(1))


def test_reducer_accumulates_in_parallel_loop() -> None:
    M, N = 45, 70
    kernel = tilebridge_tilelang.compile(kernels.column_sums_reducer(M, N, 32), out_idx=[1])
    x = randn(M, N, seed=6)
    torch.testing.assert_close(kernel(x), x.sum(0), rtol=1e-5, atol=1e-5)


def test_warp_shuffle_is_refused_by_name() -> None:
    with pytest.raises(tilebridge_tilelang.UnsupportedConstruct, match="shfl_xor"):
        tilebridge_tilelang.compile(kernels.warp_shuffle(32))


def test_reducer_v2_starts_from_its_init_value() -> None:
    M, N = 40, 30
    kernel = tilebridge_tilelang.compile(kernels.row_max_reducer(M, N, 8), out_idx=[1])
    x = randn(M, N, seed=7)
    torch.testing.assert_close(kernel(x), x.amax(1).clamp_min(0.5))
