/* tilebridge runtime header: included by every generated kernel.
 * Conversions for types gcc cannot compute with (bf16, fp8), integer operations whose C form is
 * undefined or traps (division by zero, INT_MIN / -1, oversized shifts), NaN-propagating min/max,
 * atomics on any width and float type, the per-thread tile arena, and SIMD declarations of glibc's
 * vector math (libmvec) so that loops calling exp/log/sin/... vectorize without -ffast-math. */
#ifndef TILEBRIDGE_H
#define TILEBRIDGE_H
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>
#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>  /* _mm_sfence on every x86; the AVX-512 paths below check __AVX512F__ */
#endif
#include <sys/mman.h>

#define TB_SIMD __attribute__((simd("notinbranch")))
#define TB_MATH_F(name) float name##f(float) TB_SIMD; double name(double) TB_SIMD;
TB_MATH_F(exp) TB_MATH_F(exp2) TB_MATH_F(exp10) TB_MATH_F(expm1) TB_MATH_F(log) TB_MATH_F(log2)
TB_MATH_F(log10) TB_MATH_F(log1p) TB_MATH_F(sin) TB_MATH_F(cos) TB_MATH_F(tan) TB_MATH_F(asin)
TB_MATH_F(acos) TB_MATH_F(atan) TB_MATH_F(sinh) TB_MATH_F(cosh) TB_MATH_F(tanh) TB_MATH_F(asinh)
TB_MATH_F(acosh) TB_MATH_F(atanh) TB_MATH_F(erf) TB_MATH_F(erfc) TB_MATH_F(cbrt)
float powf(float, float) TB_SIMD; float atan2f(float, float) TB_SIMD; float hypotf(float, float) TB_SIMD;

#define TB_BITCAST(to, x) ({ __typeof__(x) tb_from_ = (x); to tb_to_; __builtin_memcpy(&tb_to_, &tb_from_, sizeof(to)); tb_to_; })

/* ---- bf16 ---- */
static inline float tb_bf2f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t tb_f2bf(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline uint16_t tb_f2bf_rtz(float f) { uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); return (uint16_t)(u >> 16); }

/* ---- fp8: generic decode/encode for a format with `eb` exponent bits, bias, and whether the
 * top code is inf/nan (IEEE-like, e5m2) or only the all-ones code is nan (e4m3fn), or none (fnuz). */
static inline float tb_fp8_decode(uint8_t v, int eb, int bias, int kind) {
    int mb = 7 - eb; int s = v >> 7; int e = (v >> mb) & ((1 << eb) - 1); int m = v & ((1 << mb) - 1);
    float r;
    if (kind == 2 && v == 0x80) return NAN;                       /* fnuz: negative zero code is nan */
    if (kind == 0 && e == (1 << eb) - 1) r = m ? NAN : INFINITY;  /* ieee-like */
    else if (kind == 1 && e == (1 << eb) - 1 && m == (1 << mb) - 1) r = NAN;
    else if (e == 0) r = ldexpf((float)m, 1 - bias - mb);
    else r = ldexpf((float)(m | (1 << mb)), e - bias - mb);
    return s ? -r : r;
}
static inline uint8_t tb_fp8_encode(float f, int eb, int bias, int kind, int rtz) {
    int mb = 7 - eb; uint8_t s = signbit(f) ? 0x80 : 0;
    if (isnan(f)) return kind == 0 ? (uint8_t)(0x7f) : (kind == 1 ? (uint8_t)(s | 0x7f) : 0x80);
    float a = fabsf(f);
    int emax = (kind == 0) ? (1 << eb) - 2 : (1 << eb) - 1;
    int mmax = (kind == 1) ? (1 << mb) - 2 : (1 << mb) - 1;
    float maxv = ldexpf((float)(mmax | (1 << mb)), emax - bias - mb);
    if (a >= maxv) {
        if (kind == 0 && !rtz && a >= ldexpf((float)((1 << (mb + 1)) - 1) + 0.5f, emax - bias - mb)) return s | (uint8_t)(((1 << eb) - 1) << mb);
        if (kind == 0 && isinf(a) && !rtz) return s | (uint8_t)(((1 << eb) - 1) << mb);
        return (uint8_t)(s | (emax << mb) | mmax) == 0x80 && kind == 2 ? 0 : (uint8_t)(s | (emax << mb) | mmax);
    }
    int e; frexpf(a, &e); e = e - 1;                      /* a = 1.m * 2^e */
    if (e < 1 - bias) e = 1 - bias;                        /* subnormal range */
    float q = ldexpf(a, mb - e);                           /* mantissa scaled to integer grid */
    float r = rtz ? truncf(q) : nearbyintf(q);
    int mi = (int)r;
    if (mi >= (2 << mb)) { mi >>= 1; e += 1; }
    int ebits = (mi >= (1 << mb)) ? e + bias : 0;
    uint8_t out = (uint8_t)(s | (ebits << mb) | (mi & ((1 << mb) - 1)));
    if (kind == 2 && out == 0x80) out = 0;
    return out;
}
#define tb_e4m3_to_f(v) tb_fp8_decode((v), 4, 7, 1)
#define tb_f_to_e4m3(f, z) tb_fp8_encode((f), 4, 7, 1, (z))
#define tb_e5m2_to_f(v) tb_fp8_decode((v), 5, 15, 0)
#define tb_f_to_e5m2(f, z) tb_fp8_encode((f), 5, 15, 0, (z))
#define tb_e4b15_to_f(v) tb_fp8_decode((v), 4, 15, 1)
#define tb_f_to_e4b15(f, z) tb_fp8_encode((f), 4, 15, 1, (z))
#define tb_e4b8_to_f(v) tb_fp8_decode((v), 4, 8, 2)
#define tb_f_to_e4b8(f, z) tb_fp8_encode((f), 4, 8, 2, (z))
#define tb_e5b16_to_f(v) tb_fp8_decode((v), 5, 16, 2)
#define tb_f_to_e5b16(f, z) tb_fp8_encode((f), 5, 16, 2, (z))

/* ---- integers: Triton's wrap-around semantics, without C's traps ---- */
#define TB_INT_OPS(T, U, W) \
static inline T tb_div_##T(T a, T b) { return b == 0 ? (T)-1 : (b == -1 ? (T)((U)0 - (U)a) : (T)(a / b)); } \
static inline T tb_rem_##T(T a, T b) { return b == 0 ? a : (b == -1 ? (T)0 : (T)(a % b)); } \
static inline T tb_divu_##T(T a, T b) { return (U)b == 0 ? (T)-1 : (T)((U)a / (U)b); } \
static inline T tb_remu_##T(T a, T b) { return (U)b == 0 ? a : (T)((U)a % (U)b); } \
static inline T tb_shl_##T(T a, T b) { return (U)b >= W ? (T)0 : (T)((U)a << (U)b); } \
static inline T tb_shr_##T(T a, T b) { return (U)b >= W ? (T)(a < 0 ? -1 : 0) : (T)(a >> (U)b); } \
static inline T tb_shru_##T(T a, T b) { return (U)b >= W ? (T)0 : (T)((U)a >> (U)b); } \
static inline T tb_floordiv_##T(T a, T b) { T q = tb_div_##T(a, b); return (b != 0 && (a % b != 0) && ((a < 0) != (b < 0))) ? (T)(q - 1) : q; }
TB_INT_OPS(int8_t, uint8_t, 8) TB_INT_OPS(int16_t, uint16_t, 16) TB_INT_OPS(int32_t, uint32_t, 32) TB_INT_OPS(int64_t, uint64_t, 64)
static inline int32_t tb_mulhi_int32_t(int32_t a, int32_t b) { return (int32_t)(((int64_t)a * b) >> 32); }
static inline int32_t tb_mulhiu_int32_t(int32_t a, int32_t b) { return (int32_t)(((uint64_t)(uint32_t)a * (uint32_t)b) >> 32); }
static inline int64_t tb_mulhi_int64_t(int64_t a, int64_t b) { return (int64_t)(((__int128)a * b) >> 64); }
static inline int64_t tb_mulhiu_int64_t(int64_t a, int64_t b) { return (int64_t)(((unsigned __int128)(uint64_t)a * (uint64_t)b) >> 64); }
static inline int32_t tb_clz32(int32_t a) { return a == 0 ? 32 : __builtin_clz((uint32_t)a); }
static inline int32_t tb_clz64(int64_t a) { return a == 0 ? 64 : __builtin_clzll((uint64_t)a); }
static inline int32_t tb_ctz32(int32_t a) { return a == 0 ? 32 : __builtin_ctz((uint32_t)a); }
static inline int32_t tb_ctz64(int64_t a) { return a == 0 ? 64 : __builtin_ctzll((uint64_t)a); }
static inline int32_t tb_brev32(int32_t a) { uint32_t x = (uint32_t)a, r = 0; for (int i = 0; i < 32; i++) { r = (r << 1) | (x & 1); x >>= 1; } return (int32_t)r; }

/* ---- exp and exp2 without branches: glibc's vector expf drops to a scalar path whenever a lane
 * is special (-inf is common: masked-out softmax lanes), which made softmax 2x slower.
 * 2^n * p(r) with n = round(x / ln2), r reduced in two parts (Cody-Waite) and p a degree-6
 * polynomial (fitted for relative error on |r| <= ln2/2, ~2e-8). n is rounded by adding 1.5 * 2^23:
 * the sum's low mantissa bits are n, and shifted up by 23 they add n to p's exponent field, which
 * multiplies p by 2^n exactly wherever the result is a normal float (n = 128 included: there p < 1).
 * Elsewhere two selects give the result: 0 where exp(x) < 2^-126 (flushed, as GPUs' fast exp does),
 * inf where exp(x) > FLT_MAX, and x * inf keeps a NaN. Within 1.06 ulp of exp where the result is
 * normal (the previous degree-7 form: 1.01 ulp, 10-20% slower in exp-bound kernels). The exponent
 * add replaced a clamp of n to 127, a build of 2^n, a select of 2p for n = 128 and a multiply: in the
 * L2 cache on one core, 4.0 -> 3.4 ns per 16 lanes for an exp stored, 4.0 -> 3.3 for a sum of exps,
 * GELU 7.0 -> 6.2; cross-entropy 6.5 -> 5.8 ms, GELU 6.4 -> 5.4, SwiGLU 5.6 -> 5.2 through the launcher. ---- */
#define TB_EXP_SHIFT 12582912.0f    /* 1.5 * 2^23 */
#define TB_LOG2E 1.44269504088896341f
#define TB_LN2_HI 0.693359375f
#define TB_LN2_LO -2.12194440e-4f
#define TB_LN2 0.693147180559945309f
#define TB_EXP_FLUSH -87.33654022216797f    /* the least float x with exp(x) >= 2^-126, -126 ln2 rounded up */
#define TB_EXP_OVERFLOW 88.72283935546875f  /* the least float x with exp(x) > FLT_MAX, 128 ln2 rounded up */
#ifdef __FP_FAST_FMAF  /* fused steps written out where the ISA has them (the same bits in every loop) */
#define TB_FMAF(a, b, c) __builtin_fmaf(a, b, c)
#else  /* a libm fmaf call per lane would be slower than the rounding it saves */
#define TB_FMAF(a, b, c) ((a) * (b) + (c))
#endif
static inline float tb_exp_poly(float r) {
    float p = TB_FMAF(1.383679394e-3f, r, 8.374857074e-3f);
    p = TB_FMAF(p, r, 4.166822868e-2f); p = TB_FMAF(p, r, 1.666641968e-1f);
    p = TB_FMAF(p, r, 4.999999206e-1f); p = TB_FMAF(p, r, 1.000000036e+0f);
    return TB_FMAF(p, r, 1.0f);
}
/* p * 2^n given TB_EXP_SHIFT + n: the shift leaves n's low 9 bits in the exponent field (the
   constant's own bits shift out) */
static inline float tb_exp_scaled(float shifted_n, float p) {
    return TB_BITCAST(float, TB_BITCAST(uint32_t, p) + (TB_BITCAST(uint32_t, shifted_n) << 23));
}
static inline float tb_expf(float x) {
    float shifted_n = TB_FMAF(x, TB_LOG2E, TB_EXP_SHIFT);
    float n = shifted_n - TB_EXP_SHIFT;
    float r = TB_FMAF(-n, TB_LN2_LO, TB_FMAF(-n, TB_LN2_HI, x));
    float y = tb_exp_scaled(shifted_n, tb_exp_poly(r));
    y = x < TB_EXP_FLUSH ? 0.0f : y;
    return !(x < TB_EXP_OVERFLOW) ? x * INFINITY : y;
}
static inline float tb_exp2f(float x) {
    float shifted_n = x + TB_EXP_SHIFT;
    float n = shifted_n - TB_EXP_SHIFT;
    float y = tb_exp_scaled(shifted_n, tb_exp_poly((x - n) * TB_LN2));
    y = x < -126.0f ? 0.0f : y;
    return !(x < 128.0f) ? x * INFINITY : y;
}
/* erf without a libm call: x + x q(x^2) below 0.921875, 1 - exp(g(|x|)) above, where q fits
 * erf(x)/x - 1 and g fits log(erfc(t)) on [0.921875, 4] (least squares on Chebyshev nodes, g weighted
 * by erfc so the error of the result is what is fitted); past 4, erf rounds to +-1. Both branches are
 * computed and one selected, so a loop of them vectorizes. Checked against erf in double on every
 * float up to 5: within 1 ulp (libm's erff: the same), mean 0.014 ulp. libmvec's AVX-512 erff took
 * about three times as long as the memory traffic of a GELU over 16 MiB. */
static inline float tb_erff(float x) {
    float t = fabsf(x), s = x * x, u = t < 4.0f ? t : 4.0f;
    float q = TB_FMAF(8.438760415e-05f, s, -8.160781581e-04f);
    q = TB_FMAF(q, s, 5.202835426e-03f); q = TB_FMAF(q, s, -2.686024085e-02f);
    q = TB_FMAF(q, s, 1.128371358e-01f); q = TB_FMAF(q, s, -3.761263490e-01f);
    q = TB_FMAF(q, s, 1.283791661e-01f);
    float g = TB_FMAF(-2.138055061e-05f, u, 4.376487923e-04f);
    g = TB_FMAF(g, u, -4.185959697e-03f); g = TB_FMAF(g, u, 2.515727095e-02f);
    g = TB_FMAF(g, u, -1.083365381e-01f); g = TB_FMAF(g, u, -6.332974434e-01f);
    g = TB_FMAF(g, u, -1.129538536e+00f); g = TB_FMAF(g, u, 1.794231503e-04f);
    float large = copysignf(1.0f - tb_expf(g), x);
    float r = t < 0.921875f ? TB_FMAF(x, q, x) : large;
    return x != x ? x : r;
}

/* ---- floats: maxNum/minNum (a NaN operand loses) written as selects, which vectorize; gcc keeps
 * fmaxf/fminf as scalar calls unless NaNs are ruled out by fast-math ---- */
static inline float tb_fmaxf(float a, float b) { return (a > b || b != b) ? a : b; }
static inline float tb_fminf(float a, float b) { return (a < b || b != b) ? a : b; }
static inline double tb_fmax(double a, double b) { return (a > b || b != b) ? a : b; }
static inline double tb_fmin(double a, double b) { return (a < b || b != b) ? a : b; }
/* maxNum/minNum onto an accumulator that is never NaN (a max/min reduction's lanes, started from the
 * identity): one ordered compare-select, which gcc emits as one vmaxps/vminps (x86's max and min return
 * their second operand when unordered, so a NaN x leaves the accumulator), not maxNum's four operations */
static inline float tb_fmaxf_acc(float acc, float x) { return x > acc ? x : acc; }
static inline float tb_fminf_acc(float acc, float x) { return x < acc ? x : acc; }
static inline double tb_fmax_acc(double acc, double x) { return x > acc ? x : acc; }
static inline double tb_fmin_acc(double acc, double x) { return x < acc ? x : acc; }

/* Fold 16 partial lanes of a row reduction into lanes[0] in registers, pairing lane i with i + 8, then
   i + 4, i + 2, i + 1: the same tree the generic halving steps build through memory, so sums come out
   bit for bit the same. max/min keep maxnum/minnum's meaning: a NaN lane takes the generic path. */
static inline void tb_fold16_addf(float* restrict lanes) {
#ifdef __AVX512F__
    lanes[0] = _mm512_reduce_add_ps(_mm512_loadu_ps(lanes));
#else
    for (int w = 8; w; w >>= 1) for (int i = 0; i < w; i++) lanes[i] = lanes[i] + lanes[i + w];
#endif
}
static inline void tb_fold16_maxnumf(float* restrict lanes) {
#ifdef __AVX512F__
    __m512 v = _mm512_loadu_ps(lanes);
    if (!_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)) { lanes[0] = _mm512_reduce_max_ps(v); return; }
#endif
    for (int w = 8; w; w >>= 1) for (int i = 0; i < w; i++) lanes[i] = tb_fmaxf(lanes[i], lanes[i + w]);
}
static inline void tb_fold16_minnumf(float* restrict lanes) {
#ifdef __AVX512F__
    __m512 v = _mm512_loadu_ps(lanes);
    if (!_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)) { lanes[0] = _mm512_reduce_min_ps(v); return; }
#endif
    for (int w = 8; w; w >>= 1) for (int i = 0; i < w; i++) lanes[i] = tb_fminf(lanes[i], lanes[i + w]);
}
/* maximum/minimum where a NaN operand wins (tl.maximum with PropagateNan.ALL, ATen's max/amax), as
 * Triton's interpreter computes them (numpy's maximum: equal operands, +0 and -0 included, give b):
 * one comparison, one NaN test, one select. The IEEE form (+0 above -0 whatever the order) took
 * three selects, and a nested form before it made a NaN-propagating max reduction 4.5x slower than
 * a plain one. */
static inline float tb_maximumf(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float tb_minimumf(float a, float b) { return (a < b || a != a) ? a : b; }
static inline double tb_maximum(double a, double b) { return (a > b || a != a) ? a : b; }
static inline double tb_minimum(double a, double b) { return (a < b || a != a) ? a : b; }
static inline float tb_rsqrtf(float a) { return 1.0f / sqrtf(a); }
static inline double tb_rsqrt(double a) { return 1.0 / sqrt(a); }
static inline float tb_erfinvf(float y) {
    if (y <= -1.0f) return y == -1.0f ? -INFINITY : NAN;
    if (y >= 1.0f) return y == 1.0f ? INFINITY : NAN;
    double w = -log((1.0 - y) * (1.0 + y)), x;
    if (w < 5.0) { w -= 2.5; x = 2.81022636e-08; x = 3.43273939e-07 + x * w; x = -3.5233877e-06 + x * w;
        x = -4.39150654e-06 + x * w; x = 0.00021858087 + x * w; x = -0.00125372503 + x * w;
        x = -0.00417768164 + x * w; x = 0.246640727 + x * w; x = 1.50140941 + x * w; }
    else { w = sqrt(w) - 3.0; x = -0.000200214257; x = 0.000100950558 + x * w; x = 0.00134934322 + x * w;
        x = -0.00367342844 + x * w; x = 0.00573950773 + x * w; x = -0.0076224613 + x * w;
        x = 0.00943887047 + x * w; x = 1.00167406 + x * w; x = 2.83297682 + x * w; }
    x *= y;
    for (int i = 0; i < 2; i++) x -= (erf(x) - y) / (2.0 / sqrt(M_PI) * exp(-x * x));  /* Newton polish */
    return (float)x;
}

/* ---- fp32 prefix sums of contiguous rows (tl.cumsum): within a vector by log steps (lane i adds
 * lane i-1, then i-2, i-4, i-8), between vectors by a carried broadcast of the last lane, so the
 * dependent chain is one add and one permute per 16 elements instead of one add per element. ---- */
static void tb_cumsum_rows_f32(const float* restrict x, float* restrict y, int rows, int n) {
    for (int row = 0; row < rows; row++, x += n, y += n) {
        int i = 0;
        float carry = 0.0f;
#ifdef __AVX512F__
        const __m512i up1 = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
        const __m512i up2 = _mm512_set_epi32(13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0);
        const __m512i up4 = _mm512_set_epi32(11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0);
        const __m512i up8 = _mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i last = _mm512_set1_epi32(15);
        __m512 run = _mm512_setzero_ps();
        for (; i + 16 <= n; i += 16) {
            __m512 v = _mm512_loadu_ps(x + i);
            v = _mm512_add_ps(v, _mm512_maskz_permutexvar_ps(0xFFFE, up1, v));
            v = _mm512_add_ps(v, _mm512_maskz_permutexvar_ps(0xFFFC, up2, v));
            v = _mm512_add_ps(v, _mm512_maskz_permutexvar_ps(0xFFF0, up4, v));
            v = _mm512_add_ps(v, _mm512_maskz_permutexvar_ps(0xFF00, up8, v));
            v = _mm512_add_ps(v, run);
            _mm512_storeu_ps(y + i, v);
            run = _mm512_permutexvar_ps(last, v);
        }
        if (i) carry = y[i - 1];
#endif
        for (; i < n; i++) { carry += x[i]; y[i] = carry; }
    }
}

/* ---- atomics: sequentially consistent, any type; floats and min/max through compare-and-swap ---- */
#define TB_ATOMIC_CAS_LOOP(T, p, v, expr) ({ T tb_old_ = __atomic_load_n((p), __ATOMIC_RELAXED), tb_new_; \
    do { T a = tb_old_, b = (v); tb_new_ = (expr); } \
    while (!__atomic_compare_exchange((p), &tb_old_, &tb_new_, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)); tb_old_; })
#define TB_ATOMIC_FLOAT(T, IT, p, v, expr) ({ IT* tb_ip_ = (IT*)(p); IT tb_oi_ = __atomic_load_n(tb_ip_, __ATOMIC_RELAXED), tb_ni_; T tb_of_; \
    do { T a, b = (v), r; __builtin_memcpy(&a, &tb_oi_, sizeof(T)); r = (expr); __builtin_memcpy(&tb_ni_, &r, sizeof(T)); tb_of_ = a; } \
    while (!__atomic_compare_exchange_n(tb_ip_, &tb_oi_, tb_ni_, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)); tb_of_; })

/* ---- assertions: recorded, reported by the launcher as a Python exception (never abort) ---- */
static volatile int tb_assert_failed = 0;
static char tb_assert_message[512];
static inline void tb_assert_fail(const char* msg) {
    if (!__atomic_exchange_n(&tb_assert_failed, 1, __ATOMIC_SEQ_CST))
        snprintf(tb_assert_message, sizeof tb_assert_message, "%s", msg);
}
int tb_take_assert(char* out, int n) { int f = tb_assert_failed; if (f) { snprintf(out, n, "%s", tb_assert_message); tb_assert_failed = 0; } return f; }

#include "tilebridge_dot.h"

/* ---- per-thread arena for a program's tiles: allocated once per thread, reused by every launch.
 * With TB_CHECK_ARENA (TILEBRIDGE_CHECK_ARENA=1, as the tests build) a canary follows the tiles and
 * is checked after every program, so an out-of-bounds tile write fails loudly. ---- */
#define TB_CANARY 64
static __thread char* tb_arena_ptr = 0;
static __thread size_t tb_arena_size = 0;
static inline char* tb_arena(size_t bytes) {
    if (bytes > tb_arena_size) {
        free(tb_arena_ptr);
        tb_arena_ptr = (char*)aligned_alloc(64, ((bytes + 63) & ~(size_t)63) + TB_CANARY);
        tb_arena_size = tb_arena_ptr ? bytes : 0;
    }
#ifdef TB_CHECK_ARENA
    if (tb_arena_ptr) memset(tb_arena_ptr + bytes, 0xA5, TB_CANARY);
#endif
    return tb_arena_ptr;
}
/* ---- streaming stores: a contiguous output of many MiB (over every program of a launch) is written
 * with non-temporal stores, one 64-byte line at a time, which skips the read-for-ownership of each
 * destination line (a third of the traffic of a copy) and keeps the caches for the inputs. Smaller
 * outputs use ordinary stores: a consumer may still find them in cache; so do short runs per loop.
 * Measured (fp32 rows, 16-32M elements, into given outputs): streamed rows of 512 bytes and 1 KiB ran
 * slower (softmax over 128 columns 5.0 -> 6.8 ms, over 256 5.0 -> 5.3), rows of 2 KiB and more faster
 * (layer norm over 512 columns 4.5 -> 3.1, RMSNorm over 500 3.9 -> 3.4, layer norm and RMSNorm over
 * 1024 4.9 -> 3.0 and 5.1 -> 3.2, cumsum 4.6 -> 3.7); the threshold sits between. The launcher fences
 * once per thread, so the lines are visible before the launch returns. ---- */
#ifndef TB_STREAM_MIN_BYTES
#define TB_STREAM_MIN_BYTES ((int64_t)16 << 20)
#endif
#ifndef TB_STREAM_MIN_RUN
#define TB_STREAM_MIN_RUN 1536  /* bytes per loop: shorter runs of streaming stores measured slower */
#endif
#define TB_STREAMING(count, size) ((int64_t)(count) * (size) >= TB_STREAM_MIN_RUN \
    && (int64_t)(count) * (size) * tb_num_x * tb_num_y * tb_num_z >= TB_STREAM_MIN_BYTES)
/* Streaming pays only where the destination lines are not in any cache. A destination the kernel
 * (OS) has not mapped in yet, a fresh allocation, is zeroed into the caches by the page fault of
 * the first store, and streaming over it costs a second write of every line; so each thread asks
 * once per launch whether the page after its first destination is resident (mincore). */
static __thread int tb_stream_state = -1;  /* per thread and launch: -1 not asked yet, 0 no, 1 yes */
static inline int tb_stream_resident(const void* dst) {
    if (tb_stream_state < 0) {
        unsigned char resident = 0;
        uintptr_t page = ((uintptr_t)dst & ~(uintptr_t)4095) + 4096;
        tb_stream_state = mincore((void*)page, 4096, &resident) == 0 && (resident & 1);
    }
    return tb_stream_state;
}
static inline void tb_stream_line(void* dst, const void* src) {
#ifdef __AVX512F__
    _mm512_stream_si512((__m512i*)dst, _mm512_load_si512(src));
#else
    memcpy(dst, src, 64);
#endif
}
static inline void tb_stream_fence(void) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_sfence();
#else
    __sync_synchronize();
#endif
}
/* ---- software prefetch `ahead` bytes past a pointer (tilebridge/codegen/prefetch.py); integer
 * arithmetic, since the line may lie past the tensor, where a prefetch does not fault ---- */
static inline void tb_prefetch(const void* p, int64_t ahead) {
    __builtin_prefetch((const void*)((uintptr_t)p + ahead), 0, 3);
}
/* ---- transparent huge pages for large buffers: the first touch of a fresh allocation of many MiB
 * (torch.empty of an output) costs a page fault and a zeroing per 4 KiB page, which on a small VM
 * costs more than the kernel itself; advised onto 2 MiB pages it costs a fault per 2 MiB. The Python
 * entry advises the whole 2 MiB pages inside each contiguous tensor of TB_HUGE_MIN_BYTES or more that
 * the kernel may write (ir/passes.py `written_params`; an input's pages are long mapped, and skipping it
 * saves a syscall and two attribute reads, 6-28 us on a 64 MiB row max after a cold stream) before the
 * launch (a no-op for pages already mapped; contents are never touched). The advice is
 * what torch's own allocator gives with THP_MEM_ALLOC_ENABLE=1. TILEBRIDGE_HUGEPAGES=0 turns it off. ---- */
#ifndef TB_HUGE_MIN_BYTES
#define TB_HUGE_MIN_BYTES ((int64_t)4 << 20)
#endif
static inline void tb_advise_huge(const void* p, int64_t bytes) {
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + (uintptr_t)bytes) & ~(huge - 1);
#ifdef MADV_HUGEPAGE
    if (hi > lo) madvise((void*)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)lo; (void)hi;
#endif
}
static inline void tb_arena_check(const char* arena, size_t bytes) {
#ifdef TB_CHECK_ARENA
    for (int i = 0; i < TB_CANARY; i++)
        if ((unsigned char)arena[bytes + i] != 0xA5) { tb_assert_fail("tile arena overflow (a tilebridge bug)"); return; }
#else
    (void)arena; (void)bytes;
#endif
}
#endif
