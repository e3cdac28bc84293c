"""SIMT-style TileLang kernels (thread indices, per-thread locals, cross-thread shared memory,
thread all-reduce, reducers) for tilebridge's per-thread emulation. In a module file because TileLang's
parser reads kernel source with `inspect`."""

import tilelang.language as T


def double_in_place(N):
    """One element per thread: the smallest kernel that reads T.get_thread_binding."""
    @T.prim_func
    def main(X: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=N) as _:
            tx = T.get_thread_binding()
            X[tx] = X[tx] * 2.0
    return main


def matvec_shared_vector(M, K, rows_per_block):
    """y = A @ x, one row per thread. The threads load x into shared memory cooperatively (thread t loads
    elements t, t + threads, ...), then every thread reads all of it: the loads of one thread are read
    by the others, so the emulation must finish every thread's loads before any reads."""
    @T.prim_func
    def main(A: T.Tensor((M, K), "float32"), x: T.Tensor((K,), "float32"), y: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, rows_per_block), threads=rows_per_block) as bx:
            tx = T.get_thread_binding(0)
            x_shared = T.alloc_shared((K,), "float32")
            acc = T.alloc_local((1,), "float32")
            row = bx * rows_per_block + tx
            for k in T.serial(T.ceildiv(K, rows_per_block)):
                if k * rows_per_block + tx < K:
                    x_shared[k * rows_per_block + tx] = x[k * rows_per_block + tx]
            acc[0] = 0.0
            if row < M:
                for k in T.serial(K):
                    acc[0] += A[row, k] * x_shared[k]
                y[row] = acc[0]
    return main


def rotate_through_shared(N, steps):
    """Each step every thread writes its value to shared memory and takes its neighbour's: values rotate
    by one thread per step. A uniform loop around a shared exchange; a per-thread T.alloc_var."""
    @T.prim_func
    def main(X: T.Tensor((N,), "float32"), Y: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=N) as _:
            tx = T.get_thread_binding()
            ring = T.alloc_shared((N,), "float32")
            value = T.alloc_var("float32")
            value = X[tx]
            for _step in T.serial(steps):
                ring[tx] = value
                value = ring[(tx + 1) % N]
            Y[tx] = value
    return main


def row_max_allreduce(M, N, lanes, rows):
    """threads=(lanes, rows): the lanes of a row each fold a strided part of it, then combine their
    partial maxima with tvm_thread_allreduce (a T.comm_reducer over threadIdx.x)."""
    @T.prim_func
    def main(X: T.Tensor((M, N), "float32"), Out: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, rows), threads=(lanes, rows)) as bx:
            lane = T.get_thread_binding(0)
            r = T.get_thread_binding(1)
            partial = T.alloc_local((1,), "float32")
            total = T.alloc_local((1,), "float32")
            partial[0] = -T.infinity("float32")
            for k in T.serial(T.ceildiv(N, lanes)):
                if k * lanes + lane < N and bx * rows + r < M:
                    partial[0] = T.max(partial[0], X[bx * rows + r, k * lanes + lane])
            with T.attr(T.comm_reducer(lambda a, b: T.max(a, b), [-T.infinity("float32")]), "reduce_scope",
                        T.reinterpret(T.uint64(0), dtype="handle")):
                T.evaluate(T.tvm_thread_allreduce(T.uint32(1), partial[0], True, total[0], lane, dtype="handle"))
            if lane == 0 and bx * rows + r < M:
                Out[bx * rows + r] = total[0]
    return main


def column_sums_reducer(M, N, block_N):
    """T.alloc_reducer accumulated inside T.Parallel, combined by T.finalize_reducer."""
    @T.prim_func
    def main(X: T.Tensor((M, N), "float32"), Out: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, block_N), threads=128) as bx:
            sums = T.alloc_reducer((block_N,), "float32", replication="all")
            T.clear(sums)
            for i, j in T.Parallel(M, block_N):
                if bx * block_N + j < N:
                    sums[j] += X[i, bx * block_N + j]
            T.finalize_reducer(sums)
            for j in T.Parallel(block_N):
                if bx * block_N + j < N:
                    Out[bx * block_N + j] = sums[j]
    return main


def warp_shuffle(N):
    @T.prim_func
    def main(X: T.Tensor((N,), "float32")):
        with T.Kernel(1, threads=N) as _:
            tx = T.get_thread_binding()
            X[tx] = T.shfl_xor(X[tx], 1)
    return main


def row_max_reducer(M, N, block_M):
    """The current reducer form: T.reducer_init with a starting value, T.reducer_update inside
    T.Parallel, T.finalize_reducer(acc, dst) into a fragment."""
    @T.prim_func
    def main(X: T.Tensor((M, N), "float32"), Out: T.Tensor((M,), "float32")):
        with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
            acc = T.alloc_reducer((block_M,), "float32", op="max")
            result = T.alloc_fragment((block_M,), "float32")
            T.reducer_init(acc, 0.5)
            for i, j in T.Parallel(block_M, N):
                T.reducer_update(acc[i], X[bx * block_M + i, j])
            T.finalize_reducer(acc, result)
            T.copy(result, Out[bx * block_M])
    return main
