"""Scalar types of the loop IR and their C spellings.

Types are short strings: f64 f32 f16 bf16 f8e4m3 f8e5m2 f8e4b15 f8e4b8 f8e5b16, i1 i8 i16 i32 i64,
and pointers `ptr<T>`. Signedness is not a type property (as in MLIR): unsigned behaviour is chosen
by the operation (`divu`, `ltu`, unsigned casts).
"""
from __future__ import annotations

# Storage type in C for each scalar type. bf16 and fp8 are kept as raw bits and converted through
# helpers in the runtime header, since gcc has no arithmetic on them.
C_TYPES = {
    "f64": "double", "f32": "float", "f16": "_Float16", "bf16": "uint16_t",
    "f8e4m3": "uint8_t", "f8e5m2": "uint8_t", "f8e4b15": "uint8_t", "f8e4b8": "uint8_t", "f8e5b16": "uint8_t",
    "i1": "_Bool", "i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "i64": "int64_t",
}
BITS = {"f64": 64, "f32": 32, "f16": 16, "bf16": 16, "i1": 1, "i8": 8, "i16": 16, "i32": 32, "i64": 64,
        "f8e4m3": 8, "f8e5m2": 8, "f8e4b15": 8, "f8e4b8": 8, "f8e5b16": 8}
FLOATS = {"f64", "f32", "f16", "bf16", "f8e4m3", "f8e5m2", "f8e4b15", "f8e4b8", "f8e5b16"}
SOFT_FLOATS = {"bf16", "f8e4m3", "f8e5m2", "f8e4b15", "f8e4b8", "f8e5b16"}  # converted through helpers

# Triton signature strings (as in `src.signature`) → IR types.
SIGNATURE_TYPES = {
    "i1": "i1", "i8": "i8", "i16": "i16", "i32": "i32", "i64": "i64",
    "u1": "i1", "u8": "i8", "u16": "i16", "u32": "i32", "u64": "i64",
    "fp16": "f16", "bf16": "bf16", "fp32": "f32", "f32": "f32", "fp64": "f64",
}


def is_pointer(dtype: str) -> bool:
    return dtype.startswith("ptr<")


def pointee(dtype: str) -> str:
    return dtype[4:-1]


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


def c_type(dtype: str) -> str:
    """C spelling of a value of `dtype`; i1 in memory is a byte, as Triton stores booleans."""
    if is_pointer(dtype):
        inner = pointee(dtype)
        return ("int8_t" if inner == "i1" else c_type(inner)) + "*"
    return C_TYPES[dtype]


def c_memory_type(dtype: str) -> str:
    return "int8_t" if dtype == "i1" else c_type(dtype)


def c_type_of_signature(ty: str) -> str:
    if ty.startswith("*"):
        return "void*"
    return c_type(SIGNATURE_TYPES.get(ty, "i64"))
