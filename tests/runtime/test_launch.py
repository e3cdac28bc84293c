"""The runtime as users reach it through triton: launches, grids, tuning, benchmarking, device queries."""
import os
import resource

import pytest
import torch
import triton
from triton.runtime import driver

from tests.runtime import kernels as K


def test_driver_is_the_cpu_and_reports_real_properties() -> None:
    assert driver.active.get_active_torch_device() == torch.device("cpu")
    props = driver.active.utils.get_device_properties(driver.active.get_current_device())
    assert props["multiprocessor_count"] == len(os.sched_getaffinity(0))
    for key in ("max_shared_mem", "max_num_regs", "warpSize", "max_threads_per_sm"):
        assert props[key] > 0


@pytest.mark.parametrize("n", [1, 17, 1000, 4096])
def test_scalars_specializations_and_masks(n: int) -> None:
    # n == 1 becomes a constexpr in triton's specialization, 4096 gets divisibility 16.
    x = torch.randn(n)
    o = torch.full((n,), float("nan"))
    K.scale_kernel[(triton.cdiv(n, 128),)](x, o, n, 2.5, BLOCK=128)
    torch.testing.assert_close(o, x * 2.5)


@pytest.mark.parametrize("scale", [3, -0.5])
def test_constexpr_between_runtime_arguments(scale: float) -> None:
    x = torch.randn(300)
    o = torch.full((300,), float("nan"))
    K.constexpr_between_kernel[(3,)](x, scale, o, 300, BLOCK=128)
    torch.testing.assert_close(o, x * scale)


def test_empty_grid_launches_nothing() -> None:
    x = torch.randn(10)
    o = torch.full((10,), 7.0)
    K.scale_kernel[(0,)](x, o, 10, 2.0, BLOCK=16)
    assert torch.all(o == 7.0)


def test_num_threads_option() -> None:
    x = torch.randn(5000)
    for threads in (1, 2):
        o = torch.empty(5000)
        K.scale_kernel[(40,)](x, o, 5000, 3.0, BLOCK=128, num_threads=threads)
        torch.testing.assert_close(o, x * 3)


def test_autotune_with_gpu_tuning_knobs() -> None:
    n = 3000
    x = torch.randn(n)
    o = torch.empty(n)
    K.autotuned_kernel[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](x, o, n)
    torch.testing.assert_close(o, x + 1)
    assert K.autotuned_kernel.best_config is not None


@pytest.mark.parametrize("n", [1024, 1000])
def test_heuristics(n: int) -> None:
    x = torch.randn(n)
    o = torch.empty(n)
    K.heuristic_kernel[(triton.cdiv(n, 256),)](x, o, n, BLOCK=256)
    torch.testing.assert_close(o, x - 1)


def test_do_bench_times_on_the_cpu() -> None:
    x = torch.randn(100_000)
    o = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: K.scale_kernel[(triton.cdiv(100_000, 1024),)](x, o, 100_000, 2.0, BLOCK=1024),
                                 warmup=5, rep=20)
    assert 0 < ms < 1000


def test_memory_stays_flat_over_100k_launches() -> None:
    x = torch.randn(256)
    o = torch.empty(256)
    launch = K.scale_kernel[(2,)]
    for _ in range(1000):
        launch(x, o, 256, 1.5, BLOCK=128)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(100_000):
        launch(x, o, 256, 1.5, BLOCK=128)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20_000, f"resident memory grew by {grown_kib} KiB over 100,000 launches"
    torch.testing.assert_close(o, x * 1.5)
