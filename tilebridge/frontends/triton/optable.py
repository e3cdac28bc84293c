"""Tables from TTIR operations (arith, math, tt, libdevice symbols) to loop-IR scalar operations."""
from __future__ import annotations

# Elementwise binary ops: TTIR name → IR Binary op.
BINARY = {
    "arith.addi": "add", "arith.subi": "sub", "arith.muli": "mul", "arith.divsi": "div", "arith.divui": "divu",
    "arith.remsi": "rem", "arith.remui": "remu", "arith.andi": "and", "arith.ori": "or", "arith.xori": "xor",
    "arith.shli": "shl", "arith.shrsi": "shr", "arith.shrui": "shru", "arith.maxsi": "max", "arith.minsi": "min",
    "arith.maxui": "maxu", "arith.minui": "minu", "arith.floordivsi": "floordiv",
    "arith.addf": "add", "arith.subf": "sub", "arith.mulf": "mul", "arith.divf": "fdiv", "arith.remf": "frem",
    "arith.maxnumf": "fmax", "arith.minnumf": "fmin", "arith.maximumf": "fmaximum", "arith.minimumf": "fminimum",
    "math.powf": "pow", "math.atan2": "atan2", "math.copysign": "copysign", "tt.precise_divf": "fdiv",
    "tt.mulhiui": "mulhiu", "arith.mulhisi": "mulhi", "arith.mulhiui": "mulhiu",
}

# Elementwise unary ops: TTIR name → IR Unary op.
UNARY = {
    "math.exp": "exp", "math.exp2": "exp2", "math.log": "log", "math.log2": "log2", "math.log10": "log10",
    "math.log1p": "log1p", "math.expm1": "expm1", "math.sin": "sin", "math.cos": "cos", "math.tan": "tan",
    "math.asin": "asin", "math.acos": "acos", "math.atan": "atan", "math.sinh": "sinh", "math.cosh": "cosh",
    "math.tanh": "tanh", "math.asinh": "asinh", "math.acosh": "acosh", "math.atanh": "atanh",
    "math.sqrt": "sqrt", "math.rsqrt": "rsqrt", "math.erf": "erf", "math.erfc": "erfc", "math.floor": "floor",
    "math.ceil": "ceil", "math.trunc": "trunc", "math.round": "round", "math.roundeven": "rint",
    "math.absf": "abs", "math.absi": "iabs", "math.cbrt": "cbrt", "arith.negf": "neg", "tt.precise_sqrt": "sqrt",
    "math.ctlz": "clz", "math.cttz": "ctz", "math.ctpop": "popc", "math.isnan": "isnan", "math.isinf": "isinf",
    "math.isfinite": "isfinite",
}

CASTS = {  # TTIR cast → IR Cast mode
    "arith.extf": "", "arith.truncf": "", "arith.extsi": "", "arith.extui": "unsigned", "arith.trunci": "",
    "arith.sitofp": "", "arith.uitofp": "unsigned", "arith.fptosi": "", "arith.fptoui": "to_unsigned",
    "arith.index_cast": "", "arith.index_castui": "unsigned", "tt.fp_to_fp": "",
}
BITCASTS = {"arith.bitcast", "tt.bitcast", "tt.int_to_ptr", "tt.ptr_to_int"}

CMPI = {"eq": "eq", "ne": "ne", "slt": "lt", "sle": "le", "sgt": "gt", "sge": "ge",
        "ult": "ltu", "ule": "leu", "ugt": "gtu", "uge": "geu"}
CMPF = {"oeq": "eq", "ogt": "gt", "oge": "ge", "olt": "lt", "ole": "le", "une": "ne",
        "one": "one", "ord": "ord", "uno": "uno", "ueq": "ueq", "ugt": "ugt", "uge": "uge", "ult": "ult",
        "ule": "ule", "false": "false", "true": "true"}

ATOMIC_RMW = {"add": "add", "fadd": "fadd", "max": "max", "min": "min", "umax": "umax", "umin": "umin",
              "and": "and", "or": "or", "xor": "xor", "exch": "xchg"}

# libdevice (CUDA symbol names, which kernels and Inductor emit) → (kind, IR op).
# kind: 'u' unary math, 'b' binary float, 'p' predicate returning i32, 'i' integer unary, 'ib' integer binary,
# 'c' call, 'bitcast', 'cast' (with rounding)
_UNARY_MATH = ["exp", "exp2", "exp10", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "asin", "acos",
               "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "erfinv", "cbrt", "sqrt",
               "rsqrt", "floor", "ceil", "trunc", "round", "rint", "nearbyint", "lgamma", "tgamma", "logb", "j0", "j1",
               "y0", "y1"]
_BINARY_MATH = {"pow": "pow", "atan2": "atan2", "fmod": "frem", "hypot": "hypot", "copysign": "copysign",
                "fmin": "fmin", "fmax": "fmax", "fdim": "fdim", "nextafter": "nextafter", "remainder": "remainder",
                "fadd_rn": "add", "fsub_rn": "sub", "fmul_rn": "mul", "fdiv_rn": "fdiv", "dadd_rn": "add",
                "dsub_rn": "sub", "dmul_rn": "mul", "ddiv_rn": "fdiv", "fast_fdividef": "fdiv", "fdividef": "fdiv",
                "fast_powf": "pow"}


# Conversions tilebridge itself emits (see the backend's convert_custom_types): symbol → IR Call.
CUSTOM_CALLS = {"tb_fp8e4b15_to_fp32": "fp8e4b15_decode", "tb_fp32_to_fp8e4b15": "fp8e4b15_encode",
                "tb_fp32_to_fp8e4b15_rtz": "fp8e4b15_encode_rtz"}


def libdevice_entry(symbol: str) -> tuple[str, str] | None:
    if symbol in CUSTOM_CALLS:
        return ("c", CUSTOM_CALLS[symbol])
    name = symbol[5:] if symbol.startswith("__nv_") else symbol
    if name.startswith("fast_") and name[5:] in ("expf", "exp10f", "logf", "log2f", "log10f", "sinf", "cosf", "tanf"):
        name = name[5:]
    base = name[:-1] if name.endswith("f") and name[:-1] in _UNARY_MATH + list(_BINARY_MATH) + ["fabs", "fma"] else name
    if base in _UNARY_MATH:
        return ("u", base)
    if base == "fabs":
        return ("u", "abs")
    if base in ("fsqrt_rn", "dsqrt_rn"):
        return ("u", "sqrt")
    if base in _BINARY_MATH:
        return ("b", _BINARY_MATH[base])
    if name in ("fmaf", "fma", "fmaf_rn", "fma_rn"):
        return ("c", "fma")
    if name in ("isnanf", "isnand", "isnan"):
        return ("p", "isnan")
    if name in ("isinff", "isinfd", "isinf"):
        return ("p", "isinf")
    if name in ("finitef", "isfinited", "finite"):
        return ("p", "isfinite")
    if name in ("signbitf", "signbitd"):
        return ("p", "signbit")
    if name in ("clz", "clzll"):
        return ("i", "clz")
    if name in ("popc", "popcll"):
        return ("i", "popc")
    if name in ("brev",):
        return ("i", "brev")
    if name in ("abs", "llabs"):
        return ("i", "iabs")
    if name in ("mulhi", "mul64hi"):
        return ("ib", "mulhi")
    if name in ("umulhi", "umul64hi"):
        return ("ib", "mulhiu")
    if name in ("min", "llmin"):
        return ("ib", "min")
    if name in ("max", "llmax"):
        return ("ib", "max")
    if name in ("umin", "ullmin"):
        return ("ib", "minu")
    if name in ("umax", "ullmax"):
        return ("ib", "maxu")
    if name in ("float_as_int", "int_as_float", "double_as_longlong", "longlong_as_double", "float_as_uint",
                "uint_as_float"):
        return ("bitcast", name)
    if name in ("saturatef",):
        return ("c", "saturate")
    if name in ("ldexpf", "ldexp", "scalbnf", "scalbn"):
        return ("c", "ldexp")
    if name in ("ilogbf", "ilogb"):
        return ("c", "ilogb")
    if name in ("frcp_rn", "drcp_rn"):
        return ("rcp", "fdiv")
    for suffix, mode in (("_rn", "rn"), ("_rz", "rz")):
        for kind in ("float2int", "float2uint", "float2ll", "float2ull", "double2int", "double2uint", "double2ll",
                     "double2ull"):
            if name == kind + suffix:
                return ("cast", f"{kind}:{mode}")
    return None
