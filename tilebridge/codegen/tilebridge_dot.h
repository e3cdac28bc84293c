/* tilebridge tile matrix multiply: C[M,N] += A[M,K] @ B[K,N] on a program's tiles (`tt.dot`).
 * Included by tilebridge.h. fp32 through a register-blocked micro-kernel; bf16 inputs through AMX
 * tiles where the CPU and the kernel allow it, else AVX512-BF16 dot instructions, else plain C. */
#ifndef TILEBRIDGE_DOT_H
#define TILEBRIDGE_DOT_H

/* ---- fp32 ----
 * The fp32 micro-kernel keeps an MR x 32 block of C in vector registers across the whole K loop
 * (GCC vector extensions: AVX-512 here, split into narrower registers elsewhere). */
typedef float tb_v16f __attribute__((vector_size(64), aligned(4)));
#define TB_LD(p) (*(const tb_v16f*)(p))
#define TB_ST(p, v) (*(tb_v16f*)(p) = (v))
/* One row of the MR x 32 block: two vector accumulators, named so they stay in registers. */
#define TB_ROW_DECL(i) tb_v16f c##i##0 = TB_LD(&C[(m0 + i) * N + n0]), c##i##1 = TB_LD(&C[(m0 + i) * N + n0 + 16]);
#define TB_ROW_ZERO(i) tb_v16f c##i##0 = {0}, c##i##1 = {0};
#define TB_ROW_FMA(i) { float a = A[(m0 + i) * K + k]; c##i##0 += a * b0; c##i##1 += a * b1; }
#define TB_ROW_STORE(i) TB_ST(&C[(m0 + i) * N + n0], c##i##0); TB_ST(&C[(m0 + i) * N + n0 + 16], c##i##1);
#define TB_DOT_BLOCK(MR, ROWS, INIT) \
    for (int m0 = 0; m0 < M; m0 += MR) for (int n0 = 0; n0 < N; n0 += 32) { \
        ROWS(INIT) \
        _Pragma("GCC unroll 2") for (int k = 0; k < K; k++) { \
            tb_v16f b0 = TB_LD(&B[k * N + n0]), b1 = TB_LD(&B[k * N + n0 + 16]); \
            ROWS(TB_ROW_FMA) \
        } \
        ROWS(TB_ROW_STORE) \
    }
#define TB_ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define TB_ROWS4(X) X(0) X(1) X(2) X(3)
#define TB_ROWS1(X) X(0)
static __attribute__((noinline)) void tb_dot_f32(int M, int N, int K, const float* restrict A,
                                                             const float* restrict B, float* restrict C) {
    if (N % 32 == 0 && M % 8 == 0) { TB_DOT_BLOCK(8, TB_ROWS8, TB_ROW_DECL) return; }
    if (N % 32 == 0 && M % 4 == 0) { TB_DOT_BLOCK(4, TB_ROWS4, TB_ROW_DECL) return; }
    if (N % 32 == 0) { TB_DOT_BLOCK(1, TB_ROWS1, TB_ROW_DECL) return; }
    for (int m = 0; m < M; m++) for (int k = 0; k < K; k++) {
        float a = A[m * K + k];
        #pragma omp simd
        for (int n = 0; n < N; n++) C[m * N + n] += a * B[k * N + n];
    }
}
/* C = A @ B, for a product whose accumulator starts at zero (`tt.dot(a, b, 0)`, attention's scores):
 * the accumulators start in registers, with no pass that zeroes C first. */
static __attribute__((noinline)) void tb_dot_f32_set(int M, int N, int K, const float* restrict A,
                                                                 const float* restrict B, float* restrict C) {
    if (N % 32 == 0 && M % 8 == 0) { TB_DOT_BLOCK(8, TB_ROWS8, TB_ROW_ZERO) return; }
    if (N % 32 == 0 && M % 4 == 0) { TB_DOT_BLOCK(4, TB_ROWS4, TB_ROW_ZERO) return; }
    memset(C, 0, sizeof(float) * (size_t)M * N);
    tb_dot_f32(M, N, K, A, B, C);
}
/* ---- operands that arrive transposed ----
 * An operand tile whose memory runs down its columns (a linear layer's weight, `tl.trans(k)` in
 * attention, a transposed gradient) is copied as it lies, unit-stride, and turned into the
 * micro-kernel's row-major layout here, in cache: dst[c * R + r] = src[r * C + c] for 32-bit
 * elements, 16 x 16 blocks through vector registers (four rounds of shuffles), the edges one element
 * at a time. */
#ifdef __AVX512F__
static inline void tb_transpose16(const uint32_t* restrict src, int ss, uint32_t* restrict dst, int ds) {
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(src + (size_t)i * ss);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]); t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]); r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]); r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 16; i += 8) for (int j = 0; j < 4; j++) {
        t[i + j] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0x88);
        t[i + j + 4] = _mm512_shuffle_i32x4(r[i + j], r[i + j + 4], 0xdd);
    }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xdd);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_si512(dst + (size_t)i * ds, r[i]);
}
#endif
static inline void tb_transpose32(int R, int C, const uint32_t* restrict src, uint32_t* restrict dst) {
    int r0 = 0, c0 = 0;
#ifdef __AVX512F__
    for (r0 = 0; r0 + 16 <= R; r0 += 16)
        for (c0 = 0; c0 + 16 <= C; c0 += 16) tb_transpose16(src + (size_t)r0 * C + c0, C, dst + (size_t)c0 * R + r0, R);
    for (int r = 0; r < r0; r++) for (int c = c0; c < C; c++) dst[(size_t)c * R + r] = src[(size_t)r * C + c];
#endif
    for (int r = r0; r < R; r++) for (int c = 0; c < C; c++) dst[(size_t)c * R + r] = src[(size_t)r * C + c];
}
#define TB_DOT_GENERIC(NAME, T) \
static inline void NAME(int M, int N, int K, const T* restrict A, const T* restrict B, T* restrict C) { \
    for (int m = 0; m < M; m++) for (int k = 0; k < K; k++) { T a = A[m * K + k]; \
        _Pragma("omp simd") for (int n = 0; n < N; n++) C[m * N + n] += a * B[k * N + n]; } }
TB_DOT_GENERIC(tb_dot_f64, double)
TB_DOT_GENERIC(tb_dot_i32, int32_t)
TB_DOT_GENERIC(tb_dot_i64, int64_t)

/* ---- bf16 inputs, fp32 accumulation, K even. A and B arrive row-major; B is first packed in pairs
 * along K, the "VNNI" layout that AMX and vdpbf16ps read: Bp[(k/2)*2N + 2n + k%2]. ---- */
static inline void tb_pack_pairs(int K, int N, const uint16_t* restrict B, uint16_t* restrict Bp) {
    for (int kk = 0; kk < K / 2; kk++) {
        const uint16_t* r0 = B + (size_t)2 * kk * N; const uint16_t* r1 = r0 + N; uint16_t* d = Bp + (size_t)2 * kk * N;
        #pragma omp simd
        for (int n = 0; n < N; n++) { d[2 * n] = r0[n]; d[2 * n + 1] = r1[n]; }
    }
}
static void tb_dot_bf16_c(int M, int N, int K, int k0, const uint16_t* restrict A, const uint16_t* restrict B,
                          float* restrict C) {
    for (int m = 0; m < M; m++) for (int kk = k0 / 2; kk < K / 2; kk++) {
        float a0 = tb_bf2f(A[m * K + 2 * kk]), a1 = tb_bf2f(A[m * K + 2 * kk + 1]);
        const uint16_t* b = B + (size_t)kk * 2 * N;
        #pragma omp simd
        for (int n = 0; n < N; n++) C[m * N + n] += a0 * tb_bf2f(b[2 * n]) + a1 * tb_bf2f(b[2 * n + 1]);
    }
}

#if defined(__AVX512BF16__)
#include <immintrin.h>
/* MR x 32 block of C in registers; each step multiplies a broadcast pair of A by 16 pairs of B. */
#define TB_BF_DECL(i) __m512 c##i##0 = _mm512_loadu_ps(&C[(m0 + i) * N + n0]), c##i##1 = _mm512_loadu_ps(&C[(m0 + i) * N + n0 + 16]);
#define TB_BF_FMA(i) { __m512bh a = (__m512bh)_mm512_set1_epi32(*(const int32_t*)&A[(m0 + i) * K + 2 * kk]); \
    c##i##0 = _mm512_dpbf16_ps(c##i##0, a, b0); c##i##1 = _mm512_dpbf16_ps(c##i##1, a, b1); }
#define TB_BF_STORE(i) _mm512_storeu_ps(&C[(m0 + i) * N + n0], c##i##0); _mm512_storeu_ps(&C[(m0 + i) * N + n0 + 16], c##i##1);
static void tb_dot_bf16_avx512(int M, int N, int K, const uint16_t* restrict A, const uint16_t* restrict B, float* restrict C) {
    for (int m0 = 0; m0 < M; m0 += 8) for (int n0 = 0; n0 < N; n0 += 32) {
        TB_ROWS8(TB_BF_DECL)
        for (int kk = 0; kk < K / 2; kk++) {
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(&B[(size_t)kk * 2 * N + 2 * n0]);
            __m512bh b1 = (__m512bh)_mm512_loadu_si512(&B[(size_t)kk * 2 * N + 2 * n0 + 32]);
            TB_ROWS8(TB_BF_FMA)
        }
        TB_ROWS8(TB_BF_STORE)
    }
}
#endif

#if defined(__AMX_TILE__) && defined(__AMX_BF16__) && defined(__linux__)
#define TB_HAVE_AMX 1
#include <sys/syscall.h>
#include <unistd.h>
/* Linux hands out the AMX register state only on request, once per process. */
static int tb_amx_permitted(void) {
    static int state = 0;
    if (state == 0) state = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0 ? 1 : -1;
    return state > 0;
}
typedef struct { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } tb_tile_config;
/* The full 32-wide K chunks, on 16x16 fp32 tiles of C. The tile configuration is loaded on every call:
 * another library (oneDNN) may have configured the tiles of this thread differently in between. */
static void tb_dot_bf16_amx(int M, int N, int K, const uint16_t* A, const uint16_t* B, float* C) {
    tb_tile_config cfg = {0};
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.rows[t] = 16; cfg.colsb[t] = 64; }
    _tile_loadconfig(&cfg);
    const int kc = K & ~31, sa = K * 2, sb = N * 4, sc = N * 4;
    const uint16_t* Bk;
    if (M % 32 == 0 && N % 32 == 0) {
        for (int m0 = 0; m0 < M; m0 += 32) for (int n0 = 0; n0 < N; n0 += 32) {
            float* c = C + (size_t)m0 * N + n0;
            _tile_loadd(0, c, sc); _tile_loadd(1, c + 16, sc); _tile_loadd(2, c + 16 * N, sc); _tile_loadd(3, c + 16 * N + 16, sc);
            for (int k0 = 0; k0 < kc; k0 += 32) {
                Bk = B + (size_t)k0 * N + 2 * n0;
                _tile_loadd(4, A + (size_t)m0 * K + k0, sa); _tile_loadd(5, A + (size_t)(m0 + 16) * K + k0, sa);
                _tile_loadd(6, Bk, sb); _tile_loadd(7, Bk + 32, sb);
                _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, c, sc); _tile_stored(1, c + 16, sc); _tile_stored(2, c + 16 * N, sc); _tile_stored(3, c + 16 * N + 16, sc);
        }
    } else {
        for (int m0 = 0; m0 < M; m0 += 16) for (int n0 = 0; n0 < N; n0 += 16) {
            float* c = C + (size_t)m0 * N + n0;
            _tile_loadd(0, c, sc);
            for (int k0 = 0; k0 < kc; k0 += 32) {
                _tile_loadd(4, A + (size_t)m0 * K + k0, sa); _tile_loadd(6, B + (size_t)k0 * N + 2 * n0, sb);
                _tile_dpbf16ps(0, 4, 6);
            }
            _tile_stored(0, c, sc);
        }
    }
    _tile_release();
}
#endif

/* The product on B already in pairs (Bp above). */
static void tb_dot_bf16_pairs(int M, int N, int K, const uint16_t* restrict A, const uint16_t* restrict B, float* restrict C) {
    int done = 0;  /* K columns finished by a fast path; the rest go through plain C */
#ifdef TB_HAVE_AMX
    if (M % 16 == 0 && N % 16 == 0 && K >= 32 && tb_amx_permitted()) { tb_dot_bf16_amx(M, N, K, A, B, C); done = K & ~31; }
#endif
#ifdef __AVX512BF16__
    if (done == 0 && M % 8 == 0 && N % 32 == 0) { tb_dot_bf16_avx512(M, N, K, A, B, C); done = K; }
#endif
    if (done < K) tb_dot_bf16_c(M, N, K, done, A, B, C);
}
static __attribute__((noinline)) void tb_dot_bf16(int M, int N, int K, const uint16_t* restrict A,
                                                  const uint16_t* restrict Brows, float* restrict C, uint16_t* restrict B) {
    tb_pack_pairs(K, N, Brows, B);
    tb_dot_bf16_pairs(M, N, K, A, B, C);
}
/* Bt is N x K: each row's pairs along K are one 32-bit word, so the pairs layout is the transpose of
 * Bt read as N x K/2 words. */
static __attribute__((noinline)) void tb_dot_bf16_nt(int M, int N, int K, const uint16_t* restrict A,
                                                     const uint16_t* restrict Bt, float* restrict C, uint16_t* restrict B) {
    tb_transpose32(N, K / 2, (const uint32_t*)Bt, (uint32_t*)B);
    tb_dot_bf16_pairs(M, N, K, A, B, C);
}

#endif
