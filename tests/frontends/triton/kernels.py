"""Kernels for the language tests (triton needs them in a real source file)."""
import triton
import triton.language as tl
from triton.language.extra import libdevice


@triton.jit
def matmul_kernel(A, B, C, M, N, K, sam, sak, sbk, sbn, scm, scn,
                  BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, ACC: tl.constexpr):
    pm, pn = tl.program_id(0), tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=ACC)
    for k0 in range(0, K, BK):
        ka = k0 + rk
        a = tl.load(A + rm[:, None] * sam + ka[None, :] * sak, mask=(rm[:, None] < M) & (ka[None, :] < K), other=0)
        b = tl.load(B + ka[:, None] * sbk + rn[None, :] * sbn, mask=(ka[:, None] < K) & (rn[None, :] < N), other=0)
        acc = tl.dot(a, b, acc, out_dtype=ACC)
    tl.store(C + rm[:, None] * scm + rn[None, :] * scn, acc.to(C.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def scores_kernel(Q, Kt, S, M, N, D: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    """S = Q @ K^T with K loaded row-major and transposed in the kernel, as attention does."""
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    rd = tl.arange(0, D)
    q = tl.load(Q + rm[:, None] * D + rd[None, :], mask=rm[:, None] < M, other=0)
    k = tl.load(Kt + rn[:, None] * D + rd[None, :], mask=rn[:, None] < N, other=0)
    s = tl.dot(q, tl.trans(k))
    tl.store(S + rm[:, None] * N + rn[None, :], s, mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def block_pointer_copy(A, Out, M, N, BM: tl.constexpr, BN: tl.constexpr):
    pm = tl.program_id(0)
    src = tl.make_block_ptr(A, (M, N), (N, 1), (pm * BM, 0), (BM, BN), (1, 0))
    dst = tl.make_block_ptr(Out, (M, N), (N, 1), (pm * BM, 0), (BM, BN), (1, 0))
    for _ in range(0, N, BN):
        tl.store(dst, tl.load(src, boundary_check=(0, 1), padding_option="zero") * 2, boundary_check=(0, 1))
        src = tl.advance(src, (0, BN))
        dst = tl.advance(dst, (0, BN))


@triton.jit
def atomic_kernel(X, Sum, Max, Min, Cnt, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask, other=0)
    tl.atomic_add(Sum + offs % 7, x, mask=mask)
    tl.atomic_max(Max + offs % 5, (x * 1000).to(tl.int32), mask=mask)
    tl.atomic_min(Min + offs % 5, (x * 1000).to(tl.int32), mask=mask)
    tl.atomic_add(Cnt, 1)


@triton.jit
def spin_lock_kernel(Lock, Counter, ITERS: tl.constexpr):
    for _ in range(ITERS):
        while tl.atomic_cas(Lock, 0, 1) == 1:
            pass
        tl.store(Counter, tl.load(Counter) + 1)
        tl.debug_barrier()
        tl.atomic_xchg(Lock, 0)


@triton.jit
def while_kernel(X, Out, n):
    pid = tl.program_id(0)
    v = tl.load(X + pid)
    steps = 0
    while v > 1 and steps < n:
        v = tl.where(v % 2 == 0, v // 2, 3 * v + 1)
        steps += 1
    tl.store(Out + pid, steps)


@triton.jit
def libdevice_kernel(X, Out, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n)
    tl.store(Out + offs, libdevice.asin(x) + libdevice.erf(x) + libdevice.tanh(x) + libdevice.pow(tl.abs(x), 1.5),
             mask=offs < n)


@triton.jit
def assert_kernel(X, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n, other=0)
    tl.device_assert(x >= 0, "x must be non-negative")


@triton.jit
def big_tile_kernel(X, Out, BM: tl.constexpr, BN: tl.constexpr):
    rm = tl.arange(0, BM)
    rn = tl.arange(0, BN)
    x = tl.load(X + rm[:, None] * BN + rn[None, :])
    a = tl.exp(x * 0.01)
    b = a * x + 1.0
    c = tl.dot(a, b)
    tl.store(Out + rm[:, None] * BN + rn[None, :], c + tl.sum(b, axis=0)[None, :] + a)



@triton.jit
def _scale(x, factor):
    return x * factor


@triton.jit(noinline=True)
def _scalar_offset(base, delta):
    return base * 2 + delta


@triton.jit
def nested_call_kernel(X, Out, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n)
    tl.store(Out + offs, _scale(x, 3.0) + _scalar_offset(0.25, 0.5), mask=offs < n)


@triton.jit
def tuple_kernel(ptrs, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(ptrs[0] + offs, mask=offs < n)
    tl.store(ptrs[1] + offs, x + 1, mask=offs < n)


@triton.jit
def rand_kernel(Out, seed, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(Out + offs, tl.rand(seed, offs), mask=offs < n)


@triton.jit
def sort_kernel(X, Out, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(Out + offs, tl.sort(tl.load(X + offs)))


@triton.jit
def fp8_roundtrip(X, Out, n, BLOCK: tl.constexpr, FP8: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n)
    tl.store(Out + offs, x.to(FP8).to(tl.float32), mask=offs < n)


@triton.jit
def strided_kernel(X, Out, sxm, sxn, som, son, M, N, BM: tl.constexpr, BN: tl.constexpr):
    rm = tl.arange(0, BM)
    rn = tl.arange(0, BN)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    x = tl.load(X + rm[:, None] * sxm + rn[None, :] * sxn, mask=mask)
    tl.store(Out + rm[:, None] * som + rn[None, :] * son, tl.trans(tl.trans(x)) * 2 - 1, mask=mask)


@triton.jit
def guarded_row_sums_kernel(X, Sums, Squares, n_rows, n_cols, rows_per_program, BLOCK: tl.constexpr):
    """Column sums of a run of rows under `if row < n_rows`: the if's result is the loop's carried tile."""
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    sums = tl.zeros((BLOCK,), dtype=tl.float32)
    squares = tl.zeros((BLOCK,), dtype=tl.float32)
    for i in range(rows_per_program):
        row = tl.program_id(0) * rows_per_program + i
        if row < n_rows:
            x = tl.load(X + row * n_cols + cols, mask=inside, other=0.0)
            sums += x
            squares += x * x
    tl.store(Sums + tl.program_id(0) * n_cols + cols, sums, mask=inside)
    tl.store(Squares + tl.program_id(0) * n_cols + cols, squares, mask=inside)


@triton.jit
def carried_tiles_kernel(X, Out, steps, B: tl.constexpr, MODE: tl.constexpr):
    """Carried tiles whose update reads another element of a carry (a transpose), another carry (a
    swap), or the carry's old value after an if that replaces it: none may be updated in place blindly."""
    rows = tl.arange(0, B)[:, None]
    cols = tl.arange(0, B)[None, :]
    x = tl.load(X + rows * B + cols)
    a = tl.zeros((B, B), dtype=tl.float32)
    b = tl.zeros((B, B), dtype=tl.float32) + 1.0
    total = tl.zeros((B, B), dtype=tl.float32)
    for i in range(steps):
        if MODE == 0:
            a = tl.trans(a) * 0.5 + x
        elif MODE == 1:
            a, b = b, a + x
        elif MODE == 2:
            old = a
            if i % 2 == 0:
                a = a + x
            total += old
        else:  # a chain: total reads b's old value, b reads a's; written in place in the order total, b, a
            a, b, total = a * 0.9 + x, b + a, total + b * 0.5
    tl.store(Out + rows * B + cols, a + b * 3.0 + total * 5.0)


@triton.jit
def online_logsumexp_kernel(X, Out, n_cols, BLOCK: tl.constexpr):
    """logsumexp of a row streamed in blocks: the running sum's update reads the running max's old value."""
    row = tl.program_id(0)
    running_max = tl.full((BLOCK,), -float("inf"), dtype=tl.float32)
    running_sum = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(X + row * n_cols + cols, mask=cols < n_cols, other=-float("inf"))
        new_max = tl.maximum(running_max, x)
        safe = tl.where(new_max == -float("inf"), 0.0, new_max)
        running_sum = running_sum * tl.exp(running_max - safe) + tl.exp(x - safe)
        running_max = new_max
    top = tl.max(running_max, axis=0)
    tl.store(Out + row, tl.log(tl.sum(running_sum * tl.exp(running_max - top), axis=0)) + top)


@triton.jit
def row_extremes_kernel(X, Max, Min, Sum, n_cols, BLOCK: tl.constexpr):
    """Row max/min (NaN-ignoring, as tl.max and tl.min are) and sum: the reductions whose last lanes fold in registers."""
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(X + row * n_cols + cols, mask=inside, other=float("nan"))
    tl.store(Max + row, tl.max(x, axis=0))
    tl.store(Min + row, tl.min(x, axis=0))
    tl.store(Sum + row, tl.sum(tl.where(inside, x, 0.0), axis=0))


@triton.jit
def tile_row_extremes_kernel(X, Max, Min, n_rows, n_cols, ROWS: tl.constexpr, BLOCK: tl.constexpr):
    """Max and min along the rows of a 2-D tile (masked lanes read NaN), in the tile's own dtype."""
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK)
    inside = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    x = tl.load(X + rows[:, None] * n_cols + cols[None, :], mask=inside, other=float("nan"))
    tl.store(Max + rows, tl.max(x, axis=1), mask=rows < n_rows)
    tl.store(Min + rows, tl.min(x, axis=1), mask=rows < n_rows)


@triton.jit
def accumulate_then_overwrite_kernel(P, Out, n, steps, BLOCK: tl.constexpr):
    """A carried tile reads a load whose memory the same iteration then overwrites."""
    cols = tl.arange(0, BLOCK)
    inside = cols < n
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for _ in range(steps):
        x = tl.load(P + cols, mask=inside, other=0.0)
        acc_next = acc + x * 2.0
        tl.store(P + cols, x + 1.0, mask=inside)
        acc = acc_next
    tl.store(Out + cols, acc, mask=inside)
