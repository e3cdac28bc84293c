"""The runtime header's tile routines that lowerings call as `n.Intrinsic`, by element type.

One table for both frontends: the Triton and TileLang lowerings name the same C functions of
`tilebridge_dot.h`, so a routine added or renamed there changes here once.
"""
from __future__ import annotations

# C[M, N] (+)= A[M, K] @ B[K, N] on row-major tiles, by accumulator type (bf16 pairs: `tb_dot_bf16`)
DOT_PRODUCTS = {"f32": "tb_dot_f32", "f64": "tb_dot_f64", "i32": "tb_dot_i32", "i64": "tb_dot_i64"}
# dst[C, R] = src[R, C]^T in cache, through vector registers: an operand taken as it lies in memory
TRANSPOSES = {"f32": "tb_transpose32"}
