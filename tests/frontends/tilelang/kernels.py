"""TileLang kernels in the common GPU style (T.Kernel with threads, shared and fragment tiles,
T.Parallel, T.Pipelined, T.copy, T.gemm, T.reduce_*), unmodified for the CPU. They live in a module
file because TileLang's parser reads kernel source with `inspect`."""

import tilelang
import tilelang.language as T


def elementwise_add(M, N, block_M, block_N, dtype="float32"):
    """The plain form: each block guards its elements against the tensor's edge itself."""
    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            for i, j in T.Parallel(block_M, block_N):
                y = by * block_M + i
                x = bx * block_N + j
                if y < M and x < N:
                    C[y, x] = A[y, x] + B[y, x]
    return main


def elementwise_add_tiled(M, N, block_M, block_N, dtype="float32"):
    """The tiled form: T.copy into fragments and back, its bounds checks at the edges."""
    @T.prim_func
    def main(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            a = T.alloc_fragment((block_M, block_N), dtype)
            b = T.alloc_fragment((block_M, block_N), dtype)
            c = T.alloc_fragment((block_M, block_N), dtype)
            T.copy(A[by * block_M, bx * block_N], a)
            T.copy(B[by * block_M, bx * block_N], b)
            for i, j in T.Parallel(block_M, block_N):
                c[i, j] = a[i, j] + b[i, j]
            T.copy(c, C[by * block_M, bx * block_N])
    return main


@tilelang.jit(out_idx=[-1], target="tilebridge")
def scale_rows(N, block_M, dtype="float32"):
    """A symbolic row count (T.dynamic) and a scalar argument."""
    M = T.dynamic("m")

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), scale: T.float32, Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            tile = T.alloc_fragment((block_M, N), dtype)
            T.copy(X[bx * block_M, 0], tile)
            for i, j in T.Parallel(block_M, N):
                tile[i, j] = tile[i, j] * scale
            T.copy(tile, Y[bx * block_M, 0])
    return main


def softmax(M, N, block_M, dtype="float32"):
    scale = 1.44269504  # log2(e)

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, N), dtype)
            row_max = T.alloc_fragment((block_M,), dtype)
            row_sum = T.alloc_fragment((block_M,), dtype)
            T.copy(X[bx * block_M, 0], x)
            T.reduce_max(x, row_max, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = T.exp2((x[i, j] - row_max[i]) * scale)
            T.reduce_sum(x, row_sum, dim=1)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] / row_sum[i]
            T.copy(x, Y[bx * block_M, 0])
    return main


def rms_norm(M, N, block_M, eps=1e-6, dtype="float32"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), W: T.Tensor((N,), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_shared((block_M, N), dtype)
            squares = T.alloc_fragment((block_M, N), dtype)
            total = T.alloc_fragment((block_M,), dtype)
            T.copy(X[bx * block_M:(bx + 1) * block_M, :], x)
            for i, j in T.Parallel(block_M, N):
                squares[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(squares, total, dim=1)
            for i in T.Parallel(block_M):
                total[i] = T.rsqrt(total[i] / N + eps)
            for i, j in T.Parallel(block_M, N):
                squares[i, j] = x[i, j] * total[i] * W[j]
            T.copy(squares, Y[bx * block_M:(bx + 1) * block_M, :])
    return main


def column_stats(M, N, dtype="float32"):
    """Reductions along dim 0, without clearing, and the abs/min kinds; T.if_then_else and T.fill."""
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Out: T.Tensor((4, N), dtype)):
        with T.Kernel(1, threads=128) as _:
            x = T.alloc_fragment((M, N), dtype)
            lowest = T.alloc_fragment((N,), dtype)
            abs_total = T.alloc_fragment((N,), dtype)
            total_plus_one = T.alloc_fragment((N,), dtype)
            positive = T.alloc_fragment((N,), dtype)
            T.copy(X, x)
            T.reduce_min(x, lowest, dim=0)
            T.reduce_abssum(x, abs_total, dim=0)
            T.fill(total_plus_one, 1.0)
            T.reduce_sum(x, total_plus_one, dim=0, clear=False)
            for i, j in T.Parallel(M, N):
                x[i, j] = T.if_then_else(x[i, j] > 0, x[i, j], T.cast(0, dtype))
            T.reduce_max(x, positive, dim=0)
            T.copy(lowest, Out[0, 0])
            T.copy(abs_total, Out[1, 0])
            T.copy(total_plus_one, Out[2, 0])
            T.copy(positive, Out[3, 0])
    return main


def row_extremes(M, N, dtype="float32"):
    """T.reduce_max / T.reduce_min / T.reduce_absmax along rows, cleared (the identity joins each row)."""
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Out: T.Tensor((3, M), dtype)):
        with T.Kernel(1, threads=128) as _:
            x = T.alloc_fragment((M, N), dtype)
            largest = T.alloc_fragment((M,), dtype)
            smallest = T.alloc_fragment((M,), dtype)
            magnitude = T.alloc_fragment((M,), dtype)
            T.copy(X, x)
            T.reduce_max(x, largest, dim=1)
            T.reduce_min(x, smallest, dim=1)
            T.reduce_absmax(x, magnitude, dim=1)
            T.copy(largest, Out[0, 0])
            T.copy(smallest, Out[1, 0])
            T.copy(magnitude, Out[2, 0])
    return main


def row_max_onto(M, N, dtype="float32"):
    """T.reduce_max along rows without clear: the old values join each row's maxNum."""
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Old: T.Tensor((M,), dtype), Out: T.Tensor((M,), dtype)):
        with T.Kernel(1, threads=128) as _:
            x = T.alloc_fragment((M, N), dtype)
            largest = T.alloc_fragment((M,), dtype)
            T.copy(X, x)
            T.copy(Old, largest)
            T.reduce_max(x, largest, dim=1, clear=False)
            T.copy(largest, Out)
    return main


def matmul(M, N, K, block_M=64, block_N=64, block_K=32, trans_B=False, dtype="float32", accum_dtype="float32"):
    B_shape = (N, K) if trans_B else (K, N)
    B_tile = (block_N, block_K) if trans_B else (block_K, block_N)

    @T.prim_func
    def main(A: T.Tensor((M, K), dtype), B: T.Tensor(B_shape, dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=128) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared(B_tile, dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)
            T.clear(C_local)
            for k in T.Pipelined(T.ceildiv(K, block_K), num_stages=3):
                T.copy(A[by * block_M, k * block_K], A_shared)
                if trans_B:
                    T.copy(B[bx * block_N, k * block_K], B_shared)
                else:
                    T.copy(B[k * block_K, bx * block_N], B_shared)
                T.gemm(A_shared, B_shared, C_local, transpose_B=trans_B)
            T.copy(C_local, C[by * block_M, bx * block_N])
    return main


def column_sums_atomic(M, N, block_M, dtype="float32"):
    """Each block reduces its rows and adds the partial column sums into the output with a tile atomic;
    a per-block scalar total goes through an element atomic (split-K style accumulation)."""
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Sums: T.Tensor((N,), dtype), Total: T.Tensor((1,), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, N), dtype)
            partial = T.alloc_fragment((N,), dtype)
            total = T.alloc_var(dtype)
            T.copy(X[bx * block_M, 0], x)
            T.reduce_sum(x, partial, dim=0)
            T.atomic_add(Sums, partial)
            total = 0.0
            for j in T.serial(N):
                total += partial[j]
            T.atomic_add(Total[0], total)
    return main


def row_cumsum(M, N, block_M, reverse=False, dtype="float32"):
    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            tile = T.alloc_shared((block_M, N), dtype)
            T.copy(X[bx * block_M, 0], tile)
            T.sync_threads()
            T.cumsum(src=tile, dim=1, reverse=reverse)
            T.copy(tile, Y[bx * block_M, 0])
    return main


@tilelang.jit(target="tilebridge")
def add_lazy_style(A, B, block_M: int = 16):
    """The newer style: sizes from annotations (T.const), the output declared with T.empty and returned."""
    M, N = T.const("M N")
    A: T.Tensor[[M, N], T.float32]
    B: T.Tensor[[M, N], T.float32]
    C = T.empty((M, N), T.float32)
    with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
        for i, j in T.Parallel(block_M, N):
            if bx * block_M + i < M:
                C[bx * block_M + i, j] = T.max(A[bx * block_M + i, j], B[bx * block_M + i, j]) * 2.0
    return C


def flash_attention(batch, heads, seq, dim, block_M=64, block_N=64, causal=False, dtype="float16", accum="float32"):
    """Forward attention, online softmax: two T.gemm per step (one with transpose_B), a fragment cast to
    half between them, T.reduce_max without clear, layout and swizzle hints (meaningless on a CPU)."""
    scale = (1.0 / dim) ** 0.5 * 1.44269504  # log2(e)
    shape = (batch, seq, heads, dim)

    @T.prim_func
    def main(Q: T.Tensor(shape, dtype), K: T.Tensor(shape, dtype), V: T.Tensor(shape, dtype), Out: T.Tensor(shape, dtype)):
        with T.Kernel(T.ceildiv(seq, block_M), heads, batch, threads=128) as (bx, by, bz):
            Q_shared = T.alloc_shared((block_M, dim), dtype)
            K_shared = T.alloc_shared((block_N, dim), dtype)
            V_shared = T.alloc_shared((block_N, dim), dtype)
            scores = T.alloc_fragment((block_M, block_N), accum)
            scores_cast = T.alloc_fragment((block_M, block_N), dtype)
            acc_o = T.alloc_fragment((block_M, dim), accum)
            row_max = T.alloc_fragment((block_M,), accum)
            row_max_prev = T.alloc_fragment((block_M,), accum)
            rescale = T.alloc_fragment((block_M,), accum)
            row_sum = T.alloc_fragment((block_M,), accum)
            denominator = T.alloc_fragment((block_M,), accum)
            T.annotate_layout({Q_shared: tilelang.layout.make_swizzled_layout(Q_shared)})
            T.use_swizzle(10)
            T.copy(Q[bz, bx * block_M:(bx + 1) * block_M, by, :], Q_shared)
            T.fill(acc_o, 0)
            T.fill(denominator, 0)
            T.fill(row_max, -T.infinity(accum))
            steps = (T.min(T.ceildiv(seq, block_N), T.ceildiv((bx + 1) * block_M, block_N)) if causal
                     else T.ceildiv(seq, block_N))
            for k in T.Pipelined(steps, num_stages=2):
                T.copy(K[bz, k * block_N:(k + 1) * block_N, by, :], K_shared)
                if causal:
                    for i, j in T.Parallel(block_M, block_N):
                        scores[i, j] = T.if_then_else(bx * block_M + i >= k * block_N + j, 0, -T.infinity(accum))
                else:
                    T.clear(scores)
                T.gemm(Q_shared, K_shared, scores, transpose_B=True, policy=T.GemmWarpPolicy.FullRow)
                T.copy(V[bz, k * block_N:(k + 1) * block_N, by, :], V_shared)
                T.copy(row_max, row_max_prev)
                T.reduce_max(scores, row_max, dim=1, clear=False)
                for i in T.Parallel(block_M):
                    rescale[i] = T.exp2(row_max_prev[i] * scale - row_max[i] * scale)
                for i, j in T.Parallel(block_M, dim):
                    acc_o[i, j] *= rescale[i]
                for i, j in T.Parallel(block_M, block_N):
                    scores[i, j] = T.exp2(scores[i, j] * scale - row_max[i] * scale)
                T.copy(scores, scores_cast)
                T.gemm(scores_cast, V_shared, acc_o, policy=T.GemmWarpPolicy.FullRow)
                T.reduce_sum(scores, row_sum, dim=1)
                for i in T.Parallel(block_M):
                    denominator[i] = denominator[i] * rescale[i] + row_sum[i]
            for i, j in T.Parallel(block_M, dim):
                acc_o[i, j] /= denominator[i]
            T.copy(acc_o, Out[bz, bx * block_M:(bx + 1) * block_M, by, :])
    return main


def row_scaled_cast_to_fp8(M, N, block_M):
    """Per-row absmax scaling into float8_e4m3fn (448 is its largest value): T.reduce_absmax, T.clamp."""
    @T.prim_func
    def main(X: T.Tensor((M, N), "float32"), Y: T.Tensor((M, N), "float8_e4m3fn"), S: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            x = T.alloc_fragment((block_M, N), "float32")
            amax = T.alloc_fragment((block_M,), "float32")
            y = T.alloc_fragment((block_M, N), "float8_e4m3fn")
            T.copy(X[bx * block_M, 0], x)
            T.reduce_absmax(x, amax, dim=1)
            for i in T.Parallel(block_M):
                amax[i] = T.max(amax[i], 1e-4) / 448.0
            for i, j in T.Parallel(block_M, N):
                y[i, j] = T.clamp(x[i, j] / amax[i], -448.0, 448.0)
            T.copy(y, Y[bx * block_M, 0])
            T.copy(amax, S[bx * block_M])
    return main


def center_columns_two_stage(M, N, block_M, dtype="float32"):
    """Two T.Kernel scopes in one PrimFunc: the first writes per-block column sums into a T.alloc_global
    scratch tensor, the second combines them and subtracts the column means (split + combine)."""
    blocks = (M + block_M - 1) // block_M

    @T.prim_func
    def main(X: T.Tensor((M, N), dtype), Y: T.Tensor((M, N), dtype)):
        partials = T.alloc_global((blocks, N), dtype)
        with T.Kernel(blocks, threads=128) as bx:
            x = T.alloc_fragment((block_M, N), dtype)
            column = T.alloc_fragment((N,), dtype)
            T.copy(X[bx * block_M, 0], x)
            T.reduce_sum(x, column, dim=0)
            T.copy(column, partials[bx, 0])
        with T.Kernel(blocks, threads=128) as bx:
            sums = T.alloc_fragment((blocks, N), dtype)
            mean = T.alloc_fragment((N,), dtype)
            x = T.alloc_fragment((block_M, N), dtype)
            T.copy(partials, sums)
            T.reduce_sum(sums, mean, dim=0)
            T.copy(X[bx * block_M, 0], x)
            for i, j in T.Parallel(block_M, N):
                x[i, j] = x[i, j] - mean[j] / M
            T.copy(x, Y[bx * block_M, 0])
    return main


def unsigned_bytes(M, N, block_M):
    """uint8 in and out: a comparison on values above 127, a conversion to float, and uint8 arithmetic that
    wraps past 255."""
    @T.prim_func
    def main(Mask: T.Tensor((M, N), "uint8"), X: T.Tensor((M, N), "float32"), Y: T.Tensor((M, N), "float32"),
             Z: T.Tensor((M, N), "uint8")):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            mask = T.alloc_fragment((block_M, N), "uint8")
            T.copy(Mask[bx * block_M, 0], mask)
            for i, j in T.Parallel(block_M, N):
                if bx * block_M + i < M:
                    Y[bx * block_M + i, j] = T.if_then_else(mask[i, j] > 127, X[bx * block_M + i, j], 0.0) + \
                        T.cast(mask[i, j], "float32")
                    Z[bx * block_M + i, j] = mask[i, j] + T.uint8(200)
    return main


def bit_ops(N, block):
    """&, |, ^, ~, << and >> on int32 and on uint8 (whose shifts and complements stay within 8 bits)."""
    @T.prim_func
    def main(A: T.Tensor((N,), "int32"), B: T.Tensor((N,), "uint8"), Out: T.Tensor((5, N), "int32"),
             Bytes: T.Tensor((2, N), "uint8")):
        with T.Kernel(T.ceildiv(N, block), threads=128) as bx:
            for i in T.Parallel(block):
                k = bx * block + i
                if k < N:
                    Out[0, k] = A[k] & 0xFF0
                    Out[1, k] = A[k] | 5
                    Out[2, k] = A[k] ^ (A[k] >> 3)
                    Out[3, k] = ~A[k]
                    Out[4, k] = (A[k] & 0xFFFF) << 2
                    Bytes[0, k] = (B[k] << T.uint8(3)) | (B[k] >> T.uint8(5))
                    Bytes[1, k] = ~B[k]
    return main
