"""TIR scalar expressions → loop-IR expressions.

TileLang's tile-level TIR keeps scalar arithmetic as ordinary TVM expression nodes (Add, FloorDiv,
Select, Call of `tirx.exp`, ...). Each node type has one handler in `EXPRESSIONS`, and each math call
one entry in `MATH_CALLS`, so a construct without a C form is one lookup away from a clear error.
"""
from __future__ import annotations

import math

from tilebridge.ir import nodes as n
from tilebridge.ir.types import is_float

# TVM dtype strings → loop-IR scalar types of values. The IR has no unsigned types (it chooses unsigned
# behaviour per operation), so an unsigned TIR value is held in a wider signed type that represents all
# of its values; it is stored in the signed type of its width (`STORAGE`), read back zero-extended, and
# wrapped to its width after each arithmetic operation. uint64 has no wider type and is refused.
DTYPES = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16", "bool": "i1", "int8": "i8",
          "int16": "i16", "int32": "i32", "int64": "i64", "float8_e4m3fn": "f8e4m3", "float8_e5m2": "f8e5m2",
          "uint8": "i32", "uint16": "i32", "uint32": "i64"}
STORAGE = {"uint8": "i8", "uint16": "i16", "uint32": "i32"}

# Binary node type → (op for floats, op for integers); None where the form needs a handler of its own.
BINARY = {"Add": ("add", "add"), "Sub": ("sub", "sub"), "Mul": ("mul", "mul"), "Div": ("fdiv", "div"),
          "Mod": ("frem", "rem"), "Min": ("fmin", "min"), "Max": ("fmax", "max")}
COMPARE = {"LT": "lt", "LE": "le", "GT": "gt", "GE": "ge", "EQ": "eq", "NE": "ne"}
LOGICAL = {"And": "and", "Or": "or"}

# Call op name → loop-IR unary math op (the renderer's MATH table).
MATH_CALLS = {f"tirx.{name}": name for name in (
    "exp", "exp2", "exp10", "log", "log2", "log10", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tan", "asin",
    "acos", "atan", "sinh", "cosh", "tanh", "erf", "floor", "ceil", "trunc", "round", "nearbyint")}
MATH_CALLS["tirx.fabs"] = "abs"
BINARY_CALLS = {"tirx.pow": "pow", "tirx.fmod": "frem", "tirx.atan2": "atan2", "tirx.copysign": "copysign",
                "tirx.hypot": "hypot"}


class UnsupportedConstruct(NotImplementedError):
    """A TileLang construct that the CPU backend cannot lower; the message names it."""


def ir_dtype(dtype) -> str:
    """The loop-IR type of a TVM dtype, or a clear error naming the TileLang type."""
    text = str(dtype)
    if text not in DTYPES:
        raise UnsupportedConstruct(f"TileLang dtype {text!r} is not supported by tilebridge's CPU backend yet")
    return DTYPES[text]


def storage_dtype(dtype) -> str:
    """The loop-IR type a buffer of TVM `dtype` is stored as (differs from `ir_dtype` for unsigned types)."""
    return STORAGE.get(str(dtype)) or ir_dtype(dtype)


def wrap_unsigned(value: n.Expr, dtype) -> n.Expr:
    """`value` reduced modulo 2^bits of unsigned TVM `dtype` (a no-op for any other dtype)."""
    storage = STORAGE.get(str(dtype))
    if storage is None:
        return value
    return n.Cast(n.Cast(value, storage), ir_dtype(dtype), "unsigned")


def constant(value, dtype: str) -> n.Const:
    return n.Const(bool(value) if dtype == "i1" else float(value) if is_float(dtype) else int(value), dtype)


class ExpressionLowering:
    """Mixed into the kernel lowering: `self.vars` maps TIR variables to IR expressions, `self.read`
    turns a BufferLoad into a read of a program buffer or of global memory."""

    vars: dict

    def expr(self, e) -> n.Expr:
        handler = EXPRESSIONS.get(type(e).__name__)
        if handler is None:
            raise UnsupportedConstruct(f"TIR expression {type(e).__name__} ({e}) is not supported by tilebridge's CPU backend")
        return handler(self, e)

    def expr_var(self, e) -> n.Expr:
        value = self.vars.get(e)
        if value is None:
            raise UnsupportedConstruct(self.unbound_message(e))
        return value

    def unbound_message(self, var) -> str:
        return f"TIR variable {var.name!r} is not bound in this kernel"

    def expr_binary(self, e) -> n.Expr:
        a, b = self.expr(e.a), self.expr(e.b)
        dtype = ir_dtype(e.dtype)
        float_op, int_op = BINARY[type(e).__name__]
        return wrap_unsigned(n.Binary(float_op if is_float(dtype) else int_op, a, b, dtype), e.dtype)

    def expr_floordiv(self, e) -> n.Expr:
        a, b, dtype = self.expr(e.a), self.expr(e.b), ir_dtype(e.dtype)
        if is_float(dtype):
            return n.Unary("floor", n.Binary("fdiv", a, b, dtype), dtype)
        return n.Binary("floordiv", a, b, dtype)

    def expr_floormod(self, e) -> n.Expr:
        """a - floor(a / b) * b: the sign follows b, as in Python."""
        a, b, dtype = self.expr(e.a), self.expr(e.b), ir_dtype(e.dtype)
        quotient = (n.Unary("floor", n.Binary("fdiv", a, b, dtype), dtype) if is_float(dtype)
                    else n.Binary("floordiv", a, b, dtype))
        return n.Binary("sub", a, n.Binary("mul", quotient, b, dtype), dtype)

    def expr_compare(self, e) -> n.Expr:
        return n.Binary(COMPARE[type(e).__name__], self.expr(e.a), self.expr(e.b), "i1")

    def expr_logical(self, e) -> n.Expr:
        return n.Binary(LOGICAL[type(e).__name__], self.expr(e.a), self.expr(e.b), "i1")

    def expr_cast(self, e) -> n.Expr:
        value = self.expr(e.value)
        if str(e.dtype) in STORAGE and is_float(value.dtype):  # through a signed integer wide enough
            value = n.Cast(value, "i64")
        return wrap_unsigned(n.Cast(value, ir_dtype(e.dtype)), e.dtype)

    def expr_select(self, e) -> n.Expr:
        return n.Select(self.expr(e.condition), self.expr(e.true_value), self.expr(e.false_value), ir_dtype(e.dtype))

    def expr_let(self, e) -> n.Expr:
        var = n.Var(self.fresh(e.var.name), ir_dtype(e.var.dtype))
        self.emit(n.Declare(var, self.expr(e.value)))
        self.vars[e.var] = var
        return self.expr(e.body)

    def expr_call(self, e) -> n.Expr:
        name = e.op.name if hasattr(e.op, "name") else str(e.op)
        dtype = ir_dtype(e.dtype)
        if name in MATH_CALLS:
            return n.Unary(MATH_CALLS[name], n.Cast(self.expr(e.args[0]), dtype), dtype)
        if name in BINARY_CALLS:
            a, b = (n.Cast(self.expr(x), dtype) for x in e.args)
            return n.Binary(BINARY_CALLS[name], a, b, dtype)
        handler = CALLS.get(name) or self.returning_calls().get(name)
        if handler is None:
            raise UnsupportedConstruct(f"TileLang call {name!r} ({e}) is not supported by tilebridge's CPU backend")
        return handler(self, e, dtype)

    def returning_calls(self) -> dict:
        from tilebridge.frontends.tilelang.tileops import ATOMIC_RETURNING
        return ATOMIC_RETURNING

    def call_if_then_else(self, e, dtype: str) -> n.Expr:
        cond, a, b = (self.expr(x) for x in e.args)
        return n.Select(cond, a, b, dtype)

    def call_sigmoid(self, e, dtype: str) -> n.Expr:
        x = n.Cast(self.expr(e.args[0]), dtype)
        one = n.Const(1.0, dtype)
        return n.Binary("fdiv", one, n.Binary("add", one, n.Unary("exp", n.Unary("neg", x, dtype), dtype), dtype), dtype)

    def call_clamp(self, e, dtype: str) -> n.Expr:
        x, lo, hi = (n.Cast(self.expr(a), dtype) for a in e.args)
        low, high = ("fmax", "fmin") if is_float(dtype) else ("max", "min")
        return n.Binary(high, n.Binary(low, x, lo, dtype), hi, dtype)

    def call_infinity(self, e, dtype: str) -> n.Expr:
        return n.Const(math.inf, dtype)

    def call_bitwise(self, e, dtype: str) -> n.Expr:
        """`T.bitwise_and/or/xor`, `T.shift_left/right` (also what `&`, `|`, `^`, `<<`, `>>` build)."""
        op = BITWISE[e.op.name]
        a, b = (x if x.dtype == dtype else n.Cast(x, dtype) for x in (self.expr(a) for a in e.args))
        return wrap_unsigned(n.Binary(op, a, b, dtype), e.dtype)

    def call_bitwise_not(self, e, dtype: str) -> n.Expr:
        a = self.expr(e.args[0])
        return wrap_unsigned(n.Unary("not", a if a.dtype == dtype else n.Cast(a, dtype), dtype), e.dtype)


# Unsigned values are held non-negative in a wider type, so an arithmetic right shift is exact for them.
BITWISE = {"tirx.bitwise_and": "and", "tirx.bitwise_or": "or", "tirx.bitwise_xor": "xor", "tirx.shift_left": "shl",
           "tirx.shift_right": "shr"}


CALLS = {"tirx.if_then_else": ExpressionLowering.call_if_then_else, "tirx.sigmoid": ExpressionLowering.call_sigmoid,
         "tl.infinity": ExpressionLowering.call_infinity, "tl.clamp": ExpressionLowering.call_clamp,
         **{name: ExpressionLowering.call_bitwise for name in BITWISE},
         "tirx.bitwise_not": ExpressionLowering.call_bitwise_not}

EXPRESSIONS = {
    "IntImm": lambda self, e: constant(e.value, ir_dtype(e.dtype)),
    "FloatImm": lambda self, e: constant(e.value, ir_dtype(e.dtype)),
    "Var": ExpressionLowering.expr_var, "SizeVar": ExpressionLowering.expr_var,
    **{name: ExpressionLowering.expr_binary for name in BINARY},
    "FloorDiv": ExpressionLowering.expr_floordiv, "FloorMod": ExpressionLowering.expr_floormod,
    **{name: ExpressionLowering.expr_compare for name in COMPARE},
    **{name: ExpressionLowering.expr_logical for name in LOGICAL},
    "Not": lambda self, e: n.Unary("not", self.expr(e.a), "i1"),
    "Cast": ExpressionLowering.expr_cast, "Select": ExpressionLowering.expr_select, "Let": ExpressionLowering.expr_let,
    "Call": ExpressionLowering.expr_call,
    "BufferLoad": lambda self, e: self.read(e.buffer, list(e.indices)),
}


def evaluate(e, env: dict) -> int:
    """The value of an integer TIR expression on the host (grid sizes), given values for its variables."""
    kind = type(e).__name__
    if kind == "IntImm":
        return int(e.value)
    if kind in ("Var", "SizeVar"):
        if e not in env:
            raise UnsupportedConstruct(f"the grid size depends on {e.name!r}, which is not a tensor dimension or argument")
        return int(env[e])
    if kind == "Cast":
        return evaluate(e.value, env)
    ops = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
           "FloorDiv": lambda a, b: a // b, "FloorMod": lambda a, b: a % b, "Min": min, "Max": max,
           "Div": lambda a, b: int(a / b)}
    if kind in ops:
        return ops[kind](evaluate(e.a, env), evaluate(e.b, env))
    raise UnsupportedConstruct(f"grid size {e} cannot be evaluated on the host")
