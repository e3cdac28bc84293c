"""Language constructs compiled by tilebridge, checked against PyTorch and float64 references."""
import threading

import pytest
import torch
import triton.language as tl
from triton import next_power_of_2 as triton_next_power_of_2

from tests.frontends.triton import kernels as K


def cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


@pytest.mark.parametrize("dtype,acc", [(torch.float32, tl.float32), (torch.float16, tl.float32),
                                       (torch.bfloat16, tl.float32), (torch.int8, tl.int32)])
@pytest.mark.parametrize("shape", [(37, 45, 29), (64, 64, 64), (1, 17, 33)])
def test_matmul(dtype: torch.dtype, acc, shape: tuple) -> None:
    M, N, Kd = shape
    g = torch.Generator().manual_seed(M * N + Kd)
    if dtype == torch.int8:
        a = torch.randint(-8, 8, (M, Kd), generator=g, dtype=dtype)
        b = torch.randint(-8, 8, (Kd, N), generator=g, dtype=dtype)
        c = torch.full((M, N), -1, dtype=torch.int32)
        ref = a.to(torch.int64) @ b.to(torch.int64)
    else:
        a = torch.randn(M, Kd, generator=g).to(dtype)
        b = torch.randn(Kd, N, generator=g).to(dtype)
        c = torch.full((M, N), float("nan"), dtype=torch.float32)
        ref = a.double() @ b.double()
    K.matmul_kernel[(cdiv(M, 16), cdiv(N, 32))](a, b, c, M, N, Kd, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                                                 c.stride(0), c.stride(1), BM=16, BN=32, BK=16, ACC=acc)
    if dtype == torch.int8:
        assert torch.equal(c.to(torch.int64), ref)
    else:
        torch.testing.assert_close(c.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("blocks", [(32, 64, 64), (16, 16, 32), (64, 16, 128), (8, 32, 16), (16, 16, 16)])
def test_bf16_matmul_block_shapes(blocks: tuple) -> None:
    """bf16 dots take AMX tiles (2x2 and 1x1 blocks of 16x16), vdpbf16ps or plain C by tile shape and CPU; all must agree."""
    BM, BN, BK = blocks
    M, N, Kd = 70, 90, 100
    g = torch.Generator().manual_seed(BM + BN + BK)
    a = torch.randn(M, Kd, generator=g).bfloat16()
    b = torch.randn(Kd, N, generator=g).bfloat16()
    c = torch.full((M, N), float("nan"), dtype=torch.float32)
    K.matmul_kernel[(cdiv(M, BM), cdiv(N, BN))](a, b, c, M, N, Kd, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                                                 c.stride(0), c.stride(1), BM=BM, BN=BN, BK=BK, ACC=tl.float32)
    torch.testing.assert_close(c.double(), a.double() @ b.double(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("D", [32, 64])
def test_dot_with_transposed_tile(dtype: torch.dtype, D: int) -> None:
    M, N = 50, 70
    q, k = torch.randn(M, D).to(dtype), torch.randn(N, D).to(dtype)
    s = torch.full((M, N), float("nan"))
    K.scores_kernel[(cdiv(M, 32), cdiv(N, 32))](q, k, s, M, N, D=D, BM=32, BN=32)
    torch.testing.assert_close(s.double(), q.double() @ k.double().t(), rtol=1e-4, atol=1e-4)


def test_matmul_transposed_operand() -> None:
    M, N, Kd = 33, 40, 50
    a = torch.randn(Kd, M).t()  # non-contiguous: strides (1, M)
    b = torch.randn(N, Kd).t()
    c = torch.empty(M, N)
    K.matmul_kernel[(cdiv(M, 16), cdiv(N, 32))](a, b, c, M, N, Kd, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                                                 c.stride(0), c.stride(1), BM=16, BN=32, BK=16, ACC=tl.float32)
    torch.testing.assert_close(c, a @ b, rtol=1e-4, atol=1e-4)


def test_block_pointers_with_boundary_check() -> None:
    M, N = 45, 70
    a = torch.randn(M, N)
    o = torch.full((M, N), float("nan"))
    K.block_pointer_copy[(cdiv(M, 16),)](a, o, M, N, BM=16, BN=32)
    torch.testing.assert_close(o, a * 2)


def test_atomics_across_threads() -> None:
    n = 10_007
    x = torch.rand(n) - 0.5
    s, mx, mn = torch.zeros(7), torch.full((5,), -10**9, dtype=torch.int32), torch.full((5,), 10**9, dtype=torch.int32)
    cnt = torch.zeros(1, dtype=torch.int32)
    K.atomic_kernel[(cdiv(n, 64),)](x, s, mx, mn, cnt, n, BLOCK=64)
    idx = torch.arange(n)
    scaled = (x * 1000).to(torch.int32)
    torch.testing.assert_close(s.double(), torch.zeros(7, dtype=torch.float64).index_add_(0, idx % 7, x.double()),
                               rtol=1e-4, atol=1e-4)
    assert torch.equal(mx, torch.stack([scaled[idx % 5 == r].max() for r in range(5)]))
    assert torch.equal(mn, torch.stack([scaled[idx % 5 == r].min() for r in range(5)]))
    assert cnt.item() == cdiv(n, 64)  # a scalar atomic runs once per program


def test_spin_lock_mutual_exclusion() -> None:
    lock = torch.zeros(1, dtype=torch.int32)
    counter = torch.zeros(1, dtype=torch.int32)
    K.spin_lock_kernel[(64,)](lock, counter, ITERS=50, num_threads=2)
    assert counter.item() == 64 * 50
    assert lock.item() == 0


def test_while_loop_with_data_dependent_trip_count() -> None:
    x = torch.tensor([1, 2, 3, 6, 7, 27, 97, 871], dtype=torch.int32)
    o = torch.full_like(x, -1)
    K.while_kernel[(len(x),)](x, o, 1000)

    def collatz(v: int) -> int:
        steps = 0
        while v > 1 and steps < 1000:
            v = v // 2 if v % 2 == 0 else 3 * v + 1
            steps += 1
        return steps
    assert o.tolist() == [collatz(v) for v in x.tolist()]


@pytest.mark.parametrize("n_rows,n_cols,rows_per_program", [(37, 45, 8), (64, 128, 16), (5, 1000, 4)])
def test_guarded_loop_carried_tiles(n_rows: int, n_cols: int, rows_per_program: int) -> None:
    """`if row < n: acc += x` in a loop: the if writes the carried tile itself (no copy back)."""
    x = torch.randn(n_rows, n_cols, generator=torch.Generator().manual_seed(n_rows))
    programs = cdiv(n_rows, rows_per_program)
    sums, squares = torch.full((programs, n_cols), float("nan")), torch.full((programs, n_cols), float("nan"))
    K.guarded_row_sums_kernel[(programs,)](x, sums, squares, n_rows, n_cols, rows_per_program,
                                           BLOCK=triton_next_power_of_2(n_cols))
    padded = torch.cat([x, torch.zeros(programs * rows_per_program - n_rows, n_cols)]).view(programs, rows_per_program, -1)
    torch.testing.assert_close(sums, padded.sum(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(squares, (padded * padded).sum(1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_carried_tiles_read_across_elements_and_carries(mode: int) -> None:
    B, steps = 8, 5
    x = torch.randn(B, B, generator=torch.Generator().manual_seed(mode))
    a, b, total = torch.zeros(B, B), torch.ones(B, B), torch.zeros(B, B)
    for i in range(steps):
        if mode == 0:
            a = a.t() * 0.5 + x
        elif mode == 1:
            a, b = b, a + x
        elif mode == 2:
            old = a
            if i % 2 == 0:
                a = a + x
            total = total + old
        else:
            a, b, total = a * 0.9 + x, b + a, total + b * 0.5
    out = torch.full((B, B), float("nan"))
    K.carried_tiles_kernel[(1,)](x, out, steps, B=B, MODE=mode)
    torch.testing.assert_close(out, a + b * 3.0 + total * 5.0, rtol=1e-5, atol=1e-5)


def test_carried_tile_reads_the_load_before_the_store_overwrites_it() -> None:
    p = torch.randn(300, generator=torch.Generator().manual_seed(9))
    start, out = p.clone(), torch.full((300,), float("nan"))
    K.accumulate_then_overwrite_kernel[(1,)](p, out, 300, 4, BLOCK=512)
    torch.testing.assert_close(out, 2.0 * (4 * start + 6.0))  # 2 * sum of start + k for k < 4
    torch.testing.assert_close(p, start + 4.0)


@pytest.mark.parametrize("n_cols,block", [(1000, 256), (4099, 1024), (64, 64), (37, 64)])
def test_online_logsumexp_over_blocks(n_cols: int, block: int) -> None:
    """Two carries where one's update reads the other's old value, masked last block, several rows."""
    x = torch.randn(5, n_cols, generator=torch.Generator().manual_seed(n_cols)) * 4.0
    x[2, : n_cols // 2] = float("-inf")  # a row whose first blocks are all -inf
    out = torch.full((5,), float("nan"))
    K.online_logsumexp_kernel[(5,)](x, out, n_cols, BLOCK=block)
    torch.testing.assert_close(out.double(), torch.logsumexp(x.double(), dim=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_cols,block", [(128, 128), (100, 128), (1000, 1024), (40, 64)])
def test_row_max_min_ignore_nan_and_sum(n_cols: int, block: int) -> None:
    """tl.max/tl.min drop NaN lanes (maxnum) unless the whole row is NaN; masked lanes read NaN here on purpose."""
    x = torch.randn(6, n_cols, generator=torch.Generator().manual_seed(n_cols))
    x[1, 3] = float("nan")
    x[2, :] = float("nan")
    x[3, 5] = float("inf")
    x[4, :] = float("-inf")
    x[5, 3::16] = x[5, 11::16] = x[5, 14::64] = float("nan")  # whole partial lanes of NaN, low and high halves
    outs = [torch.full((6,), 7.0) for _ in range(3)]
    K.row_extremes_kernel[(6,)](x, *outs, n_cols, BLOCK=block)
    all_nan = x.isnan().all(1)
    want_max = torch.where(all_nan, float("nan"), torch.where(x.isnan(), float("-inf"), x).amax(1))
    want_min = torch.where(all_nan, float("nan"), torch.where(x.isnan(), float("inf"), x).amin(1))
    torch.testing.assert_close(outs[0], want_max, equal_nan=True)
    torch.testing.assert_close(outs[1], want_min, equal_nan=True)
    torch.testing.assert_close(outs[2], x.double().sum(1).float(), equal_nan=True, rtol=1e-5, atol=1e-4)


def _nan_ignoring(x: torch.Tensor, largest: bool) -> torch.Tensor:
    """maxNum/minNum over rows: NaNs lose to any number; a row of NaNs alone gives NaN."""
    filler = float("-inf") if largest else float("inf")
    kept = torch.where(x.isnan(), filler, x)
    folded = kept.amax(1) if largest else kept.amin(1)
    return torch.where(x.isnan().all(1), float("nan"), folded)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_cols,block", [(1000, 1024), (256, 256), (50, 64), (33, 64)])
def test_tile_max_min_rows_at_the_identity(dtype: torch.dtype, n_cols: int, block: int) -> None:
    """Rows whose NaN-ignoring max or min is the identity (+-inf) or NaN: the lanes of a max/min reduction
    start from the identity and skip NaNs, so a row ending there must be told apart from a row of NaNs."""
    g = torch.Generator().manual_seed(n_cols + block)
    x = (torch.randn(11, n_cols, generator=g) * 3).to(dtype)
    nan, inf = float("nan"), float("inf")
    x[1] = nan
    x[2] = nan
    x[2, n_cols // 3] = -inf          # NaNs and one -inf: max and min -inf, not NaN
    x[3] = nan
    x[3, -1] = inf                    # NaNs and one +inf, in the last column
    x[4] = -inf
    x[5] = inf
    x[6] = nan
    x[6, 0] = 2.5                     # one number among NaNs, in the first lane
    x[7, ::2] = nan                   # every other element NaN
    x[8, 1::7] = -inf
    x[9] = -inf
    x[9, -1] = nan                    # -inf and a NaN at the end
    x[10, :] = torch.linspace(-5, 5, n_cols, dtype=dtype)
    outs = [torch.full((11,), 7.0, dtype=dtype) for _ in range(2)]
    K.tile_row_extremes_kernel[(cdiv(11, 4),)](x, *outs, 11, n_cols, ROWS=4, BLOCK=block)
    # masked lanes read NaN, so they drop out as well
    torch.testing.assert_close(outs[0], _nan_ignoring(x, True), equal_nan=True, rtol=0, atol=0)
    torch.testing.assert_close(outs[1], _nan_ignoring(x, False), equal_nan=True, rtol=0, atol=0)


def test_libdevice_functions() -> None:
    n = 1000
    x = torch.rand(n) * 1.8 - 0.9
    o = torch.empty(n)
    K.libdevice_kernel[(cdiv(n, 128),)](x, o, n, BLOCK=128)
    xd = x.double()
    ref = torch.asin(xd) + torch.erf(xd) + torch.tanh(xd) + xd.abs() ** 1.5
    torch.testing.assert_close(o.double(), ref, rtol=1e-5, atol=1e-5)


def test_device_assert_raises_without_crashing() -> None:
    x = torch.tensor([1.0, 2.0, -3.0, 4.0])
    with pytest.raises(AssertionError, match="x must be non-negative"):
        K.assert_kernel[(1,)](x, 4, BLOCK=4, debug=True)
    K.assert_kernel[(1,)](x.abs(), 4, BLOCK=4, debug=True)  # passes, and the flag was reset


def test_large_tiles_do_not_overflow_thread_stacks() -> None:
    x = torch.randn(256, 256) * 0.1
    o = torch.empty(256, 256)
    K.big_tile_kernel[(4,)](x, o, BM=256, BN=256, num_threads=2)
    a = torch.exp(x.double() * 0.01)
    b = a * x.double() + 1
    torch.testing.assert_close(o.double(), a @ b + b.sum(0)[None, :] + a, rtol=1e-4, atol=1e-3)


def test_nested_and_noinline_calls() -> None:
    x = torch.randn(50)
    o = torch.empty(50)
    K.nested_call_kernel[(1,)](x, o, 50, BLOCK=64)
    torch.testing.assert_close(o, x * 3 + 1)


def test_tuple_arguments() -> None:
    x = torch.randn(30)
    o = torch.empty(30)
    K.tuple_kernel[(1,)]((x, o), 30, BLOCK=32)
    torch.testing.assert_close(o, x + 1)


def test_philox_random_is_reproducible_and_uniform() -> None:
    n = 100_003
    a, b, c = torch.empty(n), torch.empty(n), torch.empty(n)
    for out, seed in ((a, 42), (b, 42), (c, 7)):
        K.rand_kernel[(cdiv(n, 1024),)](out, seed, n, BLOCK=1024)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean().item() - 0.5) < 0.01


def test_sort() -> None:
    x = torch.randn(128)
    o = torch.empty(128)
    K.sort_kernel[(1,)](x, o, BLOCK=128)
    assert torch.equal(o, torch.sort(x).values)


@pytest.mark.parametrize("fp8,torch_dtype", [(tl.float8e4nv, torch.float8_e4m3fn), (tl.float8e5, torch.float8_e5m2)])
def test_fp8_conversions_round_like_torch(fp8, torch_dtype) -> None:
    x = torch.cat([torch.randn(500) * 4, torch.tensor([0.0, -0.0, 1e-3, 448.0, -448.0, 57344.0, 3.3e-5])])
    n = len(x)
    if torch_dtype == torch.float8_e4m3fn:
        x = x.clamp(-448, 448)
    o = torch.empty(n)
    K.fp8_roundtrip[(1,)](x, o, n, BLOCK=1024, FP8=fp8)
    assert torch.equal(o, x.to(torch_dtype).float())


def test_any_strides() -> None:
    x = torch.randn(20, 30)[::2, ::3]
    o = torch.empty(40, 40)[::4, 1::4]
    M, N = x.shape
    K.strided_kernel[(1,)](x, o, x.stride(0), x.stride(1), o.stride(0), o.stride(1), M, N, BM=16, BN=16)
    torch.testing.assert_close(o, x * 2 - 1)


def test_launch_from_several_python_threads() -> None:
    n = 5000
    errors = []

    def work(seed: int) -> None:
        try:
            g = torch.Generator().manual_seed(seed)
            x = torch.rand(n, generator=g) * 1.8 - 0.9
            o = torch.empty(n)
            for _ in range(20):
                K.libdevice_kernel[(cdiv(n, 128),)](x * 0.5, o, n, BLOCK=128)
            xd = (x * 0.5).double()
            ref = torch.asin(xd) + torch.erf(xd) + torch.tanh(xd) + xd.abs() ** 1.5
            torch.testing.assert_close(o.double(), ref, rtol=1e-5, atol=1e-5)
        except Exception as e:  # collected for the main thread
            errors.append(e)
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
