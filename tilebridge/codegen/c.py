"""The C renderer: loop IR → one C translation unit per kernel.

Expressions render through tables (operator → template); narrow floats (f16, bf16, fp8) compute in
float and round back after each operation, which gives the same result as native narrow arithmetic
for + - * / and sqrt. The launcher spreads the grid's programs over OpenMP threads; each thread owns a
tile arena, so large tiles never live on a thread's stack.
"""
from __future__ import annotations

import dataclasses
import math

from tilebridge.codegen import prefetch
from tilebridge.codegen.width import streams_only, width_pragma
from tilebridge.ir import gang
from tilebridge.ir import nodes as n
from tilebridge.ir.passes import contiguous_store, substitute, written_params
from tilebridge.ir.types import BITS, SOFT_FLOATS, c_memory_type, c_type, is_float, is_pointer

# Narrow float ↔ float conversion templates.
TO_FLOAT = {"f16": "((float)({}))", "bf16": "tb_bf2f({})", "f8e4m3": "tb_e4m3_to_f({})",
            "f8e5m2": "tb_e5m2_to_f({})", "f8e4b15": "tb_e4b15_to_f({})", "f8e4b8": "tb_e4b8_to_f({})",
            "f8e5b16": "tb_e5b16_to_f({})"}
FROM_FLOAT = {"f16": "((_Float16)({}))", "bf16": "tb_f2bf({})", "f8e4m3": "tb_f_to_e4m3({}, 0)",
              "f8e5m2": "tb_f_to_e5m2({}, 0)", "f8e4b15": "tb_f_to_e4b15({}, 0)", "f8e4b8": "tb_f_to_e4b8({}, 0)",
              "f8e5b16": "tb_f_to_e5b16({}, 0)"}
FROM_FLOAT_RTZ = {"bf16": "tb_f2bf_rtz({})", "f8e4m3": "tb_f_to_e4m3({}, 1)", "f8e5m2": "tb_f_to_e5m2({}, 1)",
                  "f8e4b15": "tb_f_to_e4b15({}, 1)", "f8e4b8": "tb_f_to_e4b8({}, 1)", "f8e5b16": "tb_f_to_e5b16({}, 1)"}

# Element sizes of the stores that may be streamed (see `streamed_loop`).
STREAMABLE = {"f32": 4, "f64": 8, "i32": 4, "i64": 8, "i16": 2, "i8": 1, "f16": 2, "bf16": 2}
# 64-byte lines a streamed store loop computes per trip. One line a trip left the vectorized body a
# single vector long, each trip reloading its constants and waiting out its own dependency chains;
# four (gcc unrolls them, interleaving the chains), alternated with one through the launcher's entry:
# GELU over 16M elements 4.78 -> 3.82 ms, cumsum 3.22 -> 2.95, SwiGLU 5.07 -> 4.90, the rest unchanged.
STREAM_BLOCK_LINES = 4

INFIX = {"add": "+", "sub": "-", "mul": "*", "fdiv": "/", "and": "&", "or": "|", "xor": "^",
         "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "ptradd": "+"}
UNSIGNED_COMPARE = {"ltu": "<", "leu": "<=", "gtu": ">", "geu": ">="}
FLOAT_COMPARE = {  # MLIR cmpf predicates beyond the ordered C operators
    "one": "(!isunordered({a}, {b}) && {a} != {b})", "ord": "(!isunordered({a}, {b}))", "uno": "isunordered({a}, {b})",
    "ueq": "(isunordered({a}, {b}) || {a} == {b})", "ugt": "(!({a} <= {b}))", "uge": "(!({a} < {b}))",
    "ult": "(!({a} >= {b}))", "ule": "(!({a} > {b}))", "false": "0", "true": "1"}
INT_HELPERS = {"div", "rem", "divu", "remu", "shl", "shr", "shru", "mulhi", "mulhiu", "floordiv"}
INT_MINMAX = {"max": "({a} > {b} ? {a} : {b})", "min": "({a} < {b} ? {a} : {b})"}
FLOAT_BINARY = {  # (f32 template, f64 template)
    "fmax": ("tb_fmaxf({a}, {b})", "tb_fmax({a}, {b})"), "fmin": ("tb_fminf({a}, {b})", "tb_fmin({a}, {b})"),
    "fmax_acc": ("tb_fmaxf_acc({a}, {b})", "tb_fmax_acc({a}, {b})"),  # {a}: an accumulator never NaN
    "fmin_acc": ("tb_fminf_acc({a}, {b})", "tb_fmin_acc({a}, {b})"),
    "fmaximum": ("tb_maximumf({a}, {b})", "tb_maximum({a}, {b})"),
    "fminimum": ("tb_minimumf({a}, {b})", "tb_minimum({a}, {b})"),
    "frem": ("fmodf({a}, {b})", "fmod({a}, {b})"), "pow": ("powf({a}, {b})", "pow({a}, {b})"),
    "atan2": ("atan2f({a}, {b})", "atan2({a}, {b})"), "copysign": ("copysignf({a}, {b})", "copysign({a}, {b})"),
    "hypot": ("hypotf({a}, {b})", "hypot({a}, {b})"), "fdim": ("fdimf({a}, {b})", "fdim({a}, {b})"),
    "nextafter": ("nextafterf({a}, {b})", "nextafter({a}, {b})"),
    "remainder": ("remainderf({a}, {b})", "remainder({a}, {b})"),
}
# Unary math: name → (f32 function, f64 function); a name absent from libm has a tb_ helper.
MATH = {name: (name + "f", name) for name in (
    "exp", "exp2", "exp10", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "asin", "acos", "atan",
    "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "cbrt", "sqrt", "floor", "ceil", "trunc",
    "round", "rint", "nearbyint", "lgamma", "tgamma", "logb", "j0", "j1", "y0", "y1")}
MATH.update({"exp": ("tb_expf", "exp"), "exp2": ("tb_exp2f", "exp2"), "erf": ("tb_erff", "erf")})  # branch-free, see tilebridge.h
MATH.update({"abs": ("fabsf", "fabs"), "rsqrt": ("tb_rsqrtf", "tb_rsqrt"), "erfinv": ("tb_erfinvf", "tb_erfinvf")})
PREDICATES = {"isnan": "isnan({a})", "isinf": "isinf({a})", "isfinite": "isfinite({a})", "signbit": "(signbit({a}) != 0)"}
INT_UNARY = {"clz": ("tb_clz32({a})", "tb_clz64({a})"), "ctz": ("tb_ctz32({a})", "tb_ctz64({a})"),
             "popc": ("__builtin_popcount((uint32_t){a})", "__builtin_popcountll((uint64_t){a})"),
             "brev": ("tb_brev32({a})", "tb_brev32({a})"), "iabs": ("({a} < 0 ? -{a} : {a})", "({a} < 0 ? -{a} : {a})")}


def unsigned_c(dtype: str) -> str:
    return {"i1": "uint8_t", "i8": "uint8_t", "i16": "uint16_t", "i32": "uint32_t", "i64": "uint64_t"}[dtype]


def const_text(value, dtype: str) -> str:
    if is_float(dtype):
        v = float(value)
        if math.isnan(v):
            text = "NAN"
        elif math.isinf(v):
            text = "INFINITY" if v > 0 else "(-INFINITY)"
        else:
            text = v.hex()
        if dtype == "f64":
            return f"((double){text})" if not text.startswith("0x") and not text.startswith("-0x") else text
        if dtype == "f32":
            return f"((float){text})"
        return FROM_FLOAT[dtype].format(f"((float){text})") if dtype in SOFT_FLOATS else f"((_Float16){text})"
    if dtype == "i1":
        return "1" if value else "0"
    v = int(value)
    if dtype == "i64":
        return f"((int64_t){v}LL)" if v != -(1 << 63) else "INT64_MIN"
    if dtype == "i32":
        return f"((int32_t){v})" if v != -(1 << 31) else "INT32_MIN"
    return f"(({c_type(dtype)}){v})"


class CRenderer:
    def __init__(self) -> None:
        self.planned: dict = {}  # stream base -> bytes ahead, for the loops being rendered (see `block`)
        self.far: dict = {}  # stream base -> (bytes ahead, dtype), for the storing loops being rendered

    def expr(self, e) -> str:
        return getattr(self, "expr_" + type(e).__name__)(e)

    def as_float(self, e) -> str:
        """Render `e` for computing: narrow floats widen to float."""
        text = self.expr(e)
        return TO_FLOAT[e.dtype].format(text) if e.dtype in TO_FLOAT else text

    def narrow(self, text: str, dtype: str) -> str:
        return FROM_FLOAT[dtype].format(text) if dtype in FROM_FLOAT else text

    def expr_Const(self, e: n.Const) -> str:
        return const_text(e.value, e.dtype)

    def expr_Var(self, e: n.Var) -> str:
        return e.name

    def expr_BufRead(self, e: n.BufRead) -> str:
        return f"{e.buffer.name}[{self.expr(e.index)}]"

    def expr_MemRead(self, e: n.MemRead) -> str:
        text = f"(*({self.expr(e.pointer)}))"
        return f"({text} != 0)" if e.dtype == "i1" else text

    def expr_Unary(self, e: n.Unary) -> str:
        a = e.a
        if e.op == "neg":
            if is_float(e.dtype):
                return self.narrow(f"(-{self.as_float(a)})", e.dtype)
            return f"(({c_type(e.dtype)})(-{self.expr(a)}))"
        if e.op == "not":
            return f"(!{self.expr(a)})" if e.dtype == "i1" else f"(({c_type(e.dtype)})(~{self.expr(a)}))"
        if e.op in PREDICATES:
            return PREDICATES[e.op].format(a=self.as_float(a))
        if e.op in INT_UNARY:
            return f"(({c_type(e.dtype)}){INT_UNARY[e.op][BITS[a.dtype] > 32].format(a=self.expr(a))})"
        if e.op in MATH:
            f32, f64 = MATH[e.op]
            if a.dtype == "f64":
                return f"{f64}({self.expr(a)})"
            return self.narrow(f"{f32}({self.as_float(a)})", e.dtype)
        raise NotImplementedError(f"unary operation {e.op!r} has no C form")

    def expr_Binary(self, e: n.Binary) -> str:
        op, a, b, operand = e.op, e.a, e.b, e.a.dtype
        if op == "ptradd":
            return f"({self.expr(a)} + {self.expr(b)})"
        if is_float(operand):
            x, y = self.as_float(a), self.as_float(b)
            if op in INFIX:
                text = f"({x} {INFIX[op]} {y})"
            elif op in FLOAT_COMPARE:
                return FLOAT_COMPARE[op].format(a=x, b=y)
            elif op in FLOAT_BINARY:
                text = FLOAT_BINARY[op][operand == "f64"].format(a=x, b=y)
            else:
                raise NotImplementedError(f"float operation {op!r} has no C form")
            return text if e.dtype == "i1" else self.narrow(text, e.dtype)
        ct = c_type(operand)
        x, y = self.expr(a), self.expr(b)
        if op in UNSIGNED_COMPARE:
            u = unsigned_c(operand)
            return f"(({u}){x} {UNSIGNED_COMPARE[op]} ({u}){y})"
        if op in INT_HELPERS:
            return f"tb_{op}_{ct}({x}, {y})"
        if op in INT_MINMAX:
            return INT_MINMAX[op].format(a=x, b=y)
        if op in ("maxu", "minu"):
            u = unsigned_c(operand)
            cmp = ">" if op == "maxu" else "<"
            return f"(({u}){x} {cmp} ({u}){y} ? {x} : {y})"
        if op in INFIX:
            text = f"({x} {INFIX[op]} {y})"
            if e.dtype == "i1" or op in ("lt", "le", "gt", "ge", "eq", "ne"):
                return f"((_Bool){text})" if e.dtype == "i1" else text
            return text if BITS[operand] >= 32 else f"(({ct}){text})"
        raise NotImplementedError(f"integer operation {op!r} has no C form")

    def expr_Call(self, e: n.Call) -> str:
        args = [self.as_float(a) if is_float(a.dtype) else self.expr(a) for a in e.args]
        if e.fn == "fma":
            f = "fma" if e.dtype == "f64" else "fmaf"
            return self.narrow(f"{f}({', '.join(args)})", e.dtype)
        if e.fn == "ldexp":
            f = "ldexp" if e.dtype == "f64" else "ldexpf"
            return self.narrow(f"{f}({args[0]}, (int)({args[1]}))", e.dtype)
        if e.fn == "ilogb":
            return f"ilogb({args[0]})" if e.args[0].dtype == "f64" else f"ilogbf({args[0]})"
        if e.fn == "fp8e4b15_decode":
            return f"tb_e4b15_to_f((uint8_t)({args[0]}))"
        if e.fn.startswith("fp8e4b15_encode"):
            return f"(int8_t)tb_f_to_e4b15({args[0]}, {int(e.fn.endswith('rtz'))})"
        if e.fn == "saturate":
            return f"fminf(fmaxf({args[0]}, 0.0f), 1.0f)"
        raise NotImplementedError(f"call {e.fn!r} has no C form")

    def expr_Cast(self, e: n.Cast) -> str:
        src, dst = e.a.dtype, e.dtype
        if src == dst:
            return self.expr(e.a)
        if dst == "i1":
            return f"({self.as_float(e.a) if is_float(src) else self.expr(e.a)} != 0)"
        if is_float(dst):
            if is_float(src):
                value = self.as_float(e.a)
                if dst == "f64":
                    return f"((double){value})"
                if dst == "f32":
                    return f"((float){value})"
                if e.mode == "rtz" and dst in FROM_FLOAT_RTZ:
                    return FROM_FLOAT_RTZ[dst].format(f"((float){value})")
                if src == "f64" and dst == "f16":
                    return f"((_Float16){value})"
                return self.narrow(f"((float){value})", dst)
            value = self.expr(e.a)
            if e.mode == "unsigned" or src == "i1":
                value = f"(({unsigned_c(src)}){value})"
            if dst in ("f64", "f32", "f16"):
                return f"(({c_type(dst)}){value})"
            return self.narrow(f"((float){value})", dst)
        if is_float(src):  # float → int
            value = self.as_float(e.a)
            if e.mode == "to_unsigned":
                return f"(({c_type(dst)})({unsigned_c(dst)}){value})"
            return f"(({c_type(dst)}){value})"
        value = self.expr(e.a)
        if e.mode == "unsigned" or src == "i1":
            value = f"(({unsigned_c(src)}){value})"
        return f"(({c_type(dst)}){value})"

    def expr_Bitcast(self, e: n.Bitcast) -> str:
        if is_pointer(e.dtype) or is_pointer(e.a.dtype):
            return f"(({c_type(e.dtype)})(intptr_t){self.expr(e.a)})"
        return f"TB_BITCAST({c_type(e.dtype)}, {self.expr(e.a)})"

    def expr_Select(self, e: n.Select) -> str:
        return f"({self.expr(e.cond)} ? {self.expr(e.a)} : {self.expr(e.b)})"

    # ---- statements ----
    def block(self, body: list, depth: int) -> list[str]:
        """The statements of one block; a pass that re-reads what an earlier statement read gets the
        streams it may prefetch (`prefetch.plan`) for the loops inside it."""
        lines, earlier, outer, contiguous, outer_far = [], set(), self.planned, {}, self.far
        for s in body:
            self.planned = {**outer, **prefetch.plan(s, earlier)}
            self.far = {**outer_far, **prefetch.far_plan(s, contiguous)}
            lines += self.stmt(s, depth)
            earlier |= {prefetch.base(r.pointer) for r in prefetch.reads(s)}
            contiguous |= prefetch.contiguous_reads(s)
        self.planned, self.far = outer, outer_far
        return lines

    def stmt(self, s, depth: int) -> list[str]:
        pad = "    " * depth
        match s:
            case n.Declare():
                init = f" = {self.expr(s.init)}" if s.init is not None else ""
                return [f"{pad}{c_type(s.var.dtype)} {s.var.name}{init};"]
            case n.Assign():
                return [f"{pad}{s.var.name} = {self.expr(s.value)};"]
            case n.BufWrite():
                return [f"{pad}{s.buffer.name}[{self.expr(s.index)}] = {self.expr(s.value)};"]
            case n.MemWrite():
                value = self.expr(s.value)
                if s.value.dtype == "i1":
                    value = f"(int8_t){value}"
                return [f"{pad}*({self.expr(s.pointer)}) = {value};"]
            case n.If():
                lines = [f"{pad}if ({self.expr(s.cond)}) {{"] + self.block(s.then, depth + 1)
                if s.orelse:
                    lines += [f"{pad}}} else {{"] + self.block(s.orelse, depth + 1)
                return lines + [f"{pad}}}"]
            case n.For() if (store := contiguous_store(s)) is not None and store.value.dtype in STREAMABLE:
                return self.streamed_loop(s, store, depth)
            case n.For():
                return self.plain_loop(s, depth)
            case n.While():
                return [f"{pad}while (1) {{"] + self.block(s.body, depth + 1) + [f"{pad}}}"]
            case n.Break():
                return [f"{pad}break;"]
            case n.Label():
                return [f"{pad}{s.name}:;"]
            case n.Goto():
                return [f"{pad}goto {s.name};"]
            case n.Atomic():
                return self.atomic(s, pad)
            case n.Print():
                return self.print_(s, pad)
            case n.Assert():
                msg = s.message.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                return [f'{pad}if (!({self.expr(s.cond)})) tb_assert_fail("{msg}");']
            case n.Intrinsic():
                args = ", ".join(a.name if isinstance(a, n.Buffer) else self.expr(a) for a in s.args)
                return [f"{pad}{s.name}({args});"]
            case n.Comment():
                return [f"{pad}/* {s.text.replace('*/', '* /')} */"]
        raise TypeError(f"not an IR statement: {s!r}")

    def plain_loop(self, s: n.For, depth: int) -> list[str]:
        """A loop with ordinary stores; one whose streams are planned for prefetch gets its prefetches
        in front (a short constant range: one chunk of a row) or is strip-mined (`prefetched_loop`)."""
        found = prefetch.streams(s, self.planned) if s.step == n.Const(1, s.step.dtype) else []
        if found:
            span = (s.stop.value - s.start.value if isinstance(s.start, n.Const) and isinstance(s.stop, n.Const)
                    else None)
            if span is None or span > prefetch.chunk_elements(found):
                return self.prefetched_loop(s, found, depth)
            at_start = [(dataclasses.replace(r, pointer=substitute(r.pointer, {s.var: s.start})), ahead)
                        for r, ahead in found]
            return self.prefetches(at_start, span, "    " * depth) + self.for_loop(s, depth)
        return self.for_loop(s, depth)

    def for_loop(self, s: n.For, depth: int) -> list[str]:
        pad, v = "    " * depth, s.var
        head = (f"{pad}for ({c_type(v.dtype)} {v.name} = {self.expr(s.start)}; {v.name} < {self.expr(s.stop)}; "
                f"{v.name} += {self.expr(s.step)}) {{")
        pragma = [f"{pad}#pragma omp simd"] if s.vectorize else []
        return pragma + [head] + self.block(s.body, depth + 1) + [f"{pad}}}"]

    def prefetches(self, found: list[tuple[n.MemRead, int]], elements: int, pad: str) -> list[str]:
        """Prefetches of the lines `elements` elements of each stream from its current index cross, ahead."""
        return [f"{pad}tb_prefetch({self.expr(r.pointer)}, {ahead + k * prefetch.LINE});"
                for r, ahead in found for k in range(prefetch.lines_for(elements, r))]

    def prefetched_loop(self, loop: n.For, found: list[tuple[n.MemRead, int]], depth: int) -> list[str]:
        """A computing loop strip-mined into chunks of constant length, each led by the prefetches of
        what its streams read further on (see `prefetch`); the rest runs as one vectorized loop."""
        pad, v = "    " * depth, loop.var
        vt, chunk, inner = c_type(v.dtype), prefetch.chunk_elements(found), pad + "    "
        first = n.Var("tb_first", v.dtype)
        chunk_loop = dataclasses.replace(loop, start=first, stop=n.Binary("add", first, n.Const(chunk, v.dtype), v.dtype))
        rest = dataclasses.replace(loop, start=n.Var("tb_rest", v.dtype), stop=n.Var("tb_to", v.dtype))
        return ([f"{pad}{{",
                 f"{inner}{vt} tb_from = {self.expr(loop.start)}, tb_to = {self.expr(loop.stop)};",
                 f"{inner}{vt} {v.name} = tb_from;",
                 f"{inner}for (; {v.name} + {chunk} <= tb_to; {v.name} += {chunk}) {{"]
                + self.prefetches(found, chunk, inner + "    ")
                + [f"{inner}    {vt} tb_first = {v.name};"]
                + self.for_loop(chunk_loop, depth + 2)
                + [f"{inner}}}", f"{inner}{vt} tb_rest = {v.name};"]
                + self.for_loop(rest, depth + 1)
                + [f"{pad}}}"])

    def streamed_loop(self, loop: n.For, store: n.MemWrite, depth: int) -> list[str]:
        """A contiguous store loop in two forms: 64-byte lines of streaming stores when the launch writes
        many MiB this way (TB_STREAMING) into memory already mapped in (tb_stream_resident: not a fresh
        allocation), else the plain vectorized loop.

        The streamed form runs element by element until the destination is 64-byte aligned, then
        STREAM_BLOCK_LINES lines at a time (computed into an aligned local by one vectorized loop, then
        streamed line by line), then one line at a time, then element by element to the end."""
        pad, v = "    " * depth, loop.var
        vt = c_type(v.dtype)
        pointer = self.expr(store.pointer)
        per_line = 64 // STREAMABLE[store.value.dtype]
        inner = pad + "        "
        return ([f"{pad}{{",
                 f"{pad}    {vt} tb_start = {self.expr(loop.start)}, tb_stop = {self.expr(loop.stop)};",
                 f"{pad}    {vt} {v.name} = tb_start;",
                 f"{pad}    if (TB_STREAMING((int64_t)tb_stop - tb_start, {STREAMABLE[store.value.dtype]}) "
                 f"&& tb_stream_resident({pointer})) {{",
                 f"{pad}        for (; {v.name} < tb_stop && ((uintptr_t)({pointer}) & 63); {v.name}++) {{"]
                + self.block(loop.body, depth + 3)
                + [f"{inner}}}"]
                + self.streamed_lines(loop, store, STREAM_BLOCK_LINES * per_line, per_line, depth + 2)
                + self.streamed_lines(loop, store, per_line, per_line, depth + 2)
                + [f"{inner}for (; {v.name} < tb_stop; {v.name}++) {{"]
                + self.block(loop.body, depth + 3)
                + [f"{inner}}}"]
                + [f"{pad}    }} else {{"]
                + self.plain_loop(dataclasses.replace(loop, start=n.Var("tb_start", v.dtype),
                                                      stop=n.Var("tb_stop", v.dtype)), depth + 2)
                + [f"{pad}    }}", f"{pad}}}"])

    def streamed_lines(self, loop: n.For, store: n.MemWrite, elements: int, per_line: int, depth: int) -> list[str]:
        """The loop over `elements` (whole lines) at a time of a streamed store loop, from an aligned
        destination: one vectorized loop computes them into an aligned local, then each line streams.
        The vectorized loop runs the loop variable itself, so the C compiler still sees consecutive
        addresses."""
        pad, v = "    " * depth, loop.var
        vt, mt = c_type(v.dtype), c_memory_type(store.value.dtype)
        chunk = n.Buffer("tb_line", store.value.dtype, elements)
        body = [*loop.body[:-1], n.BufWrite(chunk, n.Binary("sub", v, n.Var("tb_first", v.dtype), v.dtype), store.value)]
        pointer = self.expr(store.pointer)
        return ([f"{pad}for (; {v.name} + {elements} <= tb_stop; {v.name} += {elements}) {{"]
                + self.prefetches(prefetch.streams(loop, self.planned) + prefetch.far_streams(loop, self.far),
                                  elements, pad + "    ")
                + [f"{pad}    {mt} tb_line[{elements}] __attribute__((aligned(64)));",
                   f"{pad}    {vt} tb_first = {v.name};",
                   f"{pad}    #pragma omp simd",
                   f"{pad}    for ({vt} {v.name} = tb_first; {v.name} < tb_first + {elements}; {v.name}++) {{"]
                + self.block(body, depth + 2)
                + [f"{pad}    }}"]
                + [f"{pad}    tb_stream_line(({pointer}) + {k * per_line}, tb_line + {k * per_line});"
                   for k in range(elements // per_line)]
                + [f"{pad}}}"])

    def atomic(self, s: n.Atomic, pad: str) -> list[str]:
        p, v = self.expr(s.pointer), self.expr(s.value)
        dtype = s.value.dtype
        ct = c_memory_type(dtype)
        result = f"{s.result.name} = " if s.result is not None else ""
        if s.op == "cas":
            cmp = self.expr(s.compare)
            text = (f"({{ {ct} tb_e_ = {cmp}; {ct} tb_d_ = {v}; __atomic_compare_exchange(({ct}*)({p}), &tb_e_, &tb_d_, 0, "
                    f"__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); tb_e_; }})")
        elif s.op == "xchg":
            text = f"({{ {ct} tb_n_ = {v}, tb_o_; __atomic_exchange(({ct}*)({p}), &tb_n_, &tb_o_, __ATOMIC_SEQ_CST); tb_o_; }})"
        elif is_float(dtype):
            int_t = {16: "uint16_t", 32: "uint32_t", 64: "uint64_t"}[BITS[dtype]]
            combine = {"fadd": "{a} + {b}", "add": "{a} + {b}", "max": "tb_maximumf({a}, {b})",
                       "min": "tb_minimumf({a}, {b})"}[s.op]
            if dtype in ("f16", "bf16"):
                combine = self.narrow(combine.format(a=TO_FLOAT[dtype].format("a"), b=TO_FLOAT[dtype].format("b")), dtype)
            else:
                combine = combine.format(a="a", b="b")
            text = f"TB_ATOMIC_FLOAT({ct}, {int_t}, ({ct}*)({p}), {v}, {combine})"
        elif s.op in ("add", "and", "or", "xor"):
            text = f"__atomic_fetch_{s.op}(({ct}*)({p}), {v}, __ATOMIC_SEQ_CST)"
        else:
            u = unsigned_c(dtype)
            combine = {"max": "(a > b ? a : b)", "min": "(a < b ? a : b)",
                       "umax": f"(({u})a > ({u})b ? a : b)", "umin": f"(({u})a < ({u})b ? a : b)"}[s.op]
            text = f"TB_ATOMIC_CAS_LOOP({ct}, ({ct}*)({p}), {v}, {combine})"
        return [f"{pad}{result}{text};"]

    def print_(self, s: n.Print, pad: str) -> list[str]:
        fmt, args = [], []
        for v in s.values:
            if is_float(v.dtype):
                fmt.append("%a" if s.hex else "%f")
                args.append(f"(double){self.as_float(v)}")
            elif is_pointer(v.dtype):
                fmt.append("%p")
                args.append(f"(void*){self.expr(v)}")
            else:
                fmt.append("0x%llx" if s.hex else "%lld")
                args.append(f"(long long){self.expr(v)}")
        prefix = s.prefix.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
        index = "".join(f"{', ' if k else ''}%lld" for k in range(len(s.indices)))
        index_args = "".join(f", (long long){self.expr(i)}" for i in s.indices)
        head = f'"pid (%d, %d, %d) idx ({index}){prefix}' if s.indices else f'"pid (%d, %d, %d) idx (){prefix}'
        line = (f'{pad}printf({head}{" ".join(fmt)}\\n", tb_pid_x, tb_pid_y, tb_pid_z{index_args}'
                f'{"".join(", " + a for a in args)});')
        return [line]


# Buffers this small (a reduction's partial lanes, short tiles) are C local arrays rather than arena
# slices: the C compiler can then keep them in vector registers across a loop.
LOCAL_BYTES = 512


def buffer_bytes(b: n.Buffer) -> int:
    return b.size * max(1, BITS.get(b.dtype, 64) // 8)


def arena_layout(buffers: list[n.Buffer]) -> tuple[list[int | None], int]:
    """Byte offsets of each buffer in a program's tile arena (64-byte aligned; None for a local
    array), and the arena size."""
    offsets, offset = [], 0
    for b in buffers:
        if buffer_bytes(b) <= LOCAL_BYTES:
            offsets.append(None)
            continue
        offsets.append(offset)
        offset += (buffer_bytes(b) + 63) // 64 * 64
    return offsets, max(offset, 64)


GRID_COUNTS = ["int32_t tb_num_x", "int32_t tb_num_y", "int32_t tb_num_z", "int32_t tb_disjoint"]


def program_function(name: str, params: list[str], pids: list[str], buffers: list[n.Buffer], body: list) -> tuple[list[str], int]:
    """The C function that runs one program (or one gang of programs), and the arena bytes it needs."""
    lines = [f"static inline void {name}({', '.join(params + pids + GRID_COUNTS + ['char* restrict tb_arena_base'])}) {{"]
    offsets, arena = arena_layout(buffers)
    for b, offset in zip(buffers, offsets):
        ct = c_memory_type(b.dtype) if b.dtype != "i1" else "_Bool"
        if offset is None:
            lines.append(f"    {ct} {b.name}[{b.size}] __attribute__((aligned(64)));")
        else:
            lines.append(f"    {ct}* restrict {b.name} = ({ct}*)(tb_arena_base + {offset});")
    return lines + CRenderer().block(body, 1) + ["}"], arena


# Programs a thread runs in lockstep (see `ir.gang`). Alternated through the launcher's entry, the
# generated row max over 16384x1024 fp32 ran 1.64-1.81 -> 1.60-1.75 ms with two, no faster with four
# (1.62-1.75) or three; row sum 1.48-1.87 -> 1.39-1.71.
GANG = 2


def gang_factor(kernel: n.Kernel) -> int:
    """How many programs a thread runs at a time: GANG for a kernel whose loops only move data into a
    reduction (`gang.interleaves`, `streams_only`), else one. Cross-entropy (exps in its loops) ran
    3-6% faster ganged, but its C took 0.9 -> 1.6 s to compile: the body compiles twice."""
    return GANG if GANG > 1 and streams_only(kernel.body) and gang.interleaves(kernel) else 1


def gang_loop(kernel: n.Kernel, k: int, arena: int) -> list[str]:
    """A thread's run of programs [first, last) as `k` parts in lockstep (see `ir.gang`): instance `j`
    steps through part `j`; what is left over after `k` equal parts runs one program at a time."""
    grid = ", ".join(f"gang_x[{j}], gang_y[{j}], gang_z[{j}]" for j in range(k))
    args = ", ".join([p.name for p in kernel.params] + [grid, "gx", "gy", "gz", "tb_disjoint", "arena"])
    return [
        f"            int64_t part = (last - first) / {k};",
        f"            int32_t gang_x[{k}], gang_y[{k}], gang_z[{k}];",
        f"            for (int j = 0; j < {k}; j++) {{",
        "                int64_t q = first + j * part;",
        "                gang_x[j] = (int32_t)(q % gx); gang_y[j] = (int32_t)((q / gx) % gy);",
        "                gang_z[j] = (int32_t)(q / ((int64_t)gx * gy));",
        "            }",
        "            for (int64_t p = 0; p < part; p++) {",
        f"                {kernel.name}_gang({args});",
        f"                tb_arena_check(arena, {arena});",
        f"                for (int j = 0; j < {k}; j++)",
        "                    if (++gang_x[j] == gx) { gang_x[j] = 0; if (++gang_y[j] == gy) { gang_y[j] = 0; gang_z[j]++; } }",
        "            }",
        f"            first += {k} * part;",
    ]


def render_kernel(kernel: n.Kernel) -> str:
    params = [f"{c_type(p.dtype)} {p.name}" for p in kernel.params]
    pids = ["int32_t tb_pid_x", "int32_t tb_pid_y", "int32_t tb_pid_z"]
    lines = ['#include "tilebridge.h"', *width_pragma(kernel), ""]
    program, arena = program_function(f"{kernel.name}_program", params, pids, kernel.buffers, kernel.body)
    lines += program
    k = gang_factor(kernel)
    lockstep = []
    if k > 1:
        body, tiles = gang.gang(kernel, k)
        program, gang_arena = program_function(f"{kernel.name}_gang", params, [f"{p}_g{j}" for j in range(k) for p in pids],
                                               tiles, body)
        lines += ["", *program]
        arena = max(arena, gang_arena)
        lockstep = gang_loop(kernel, k, arena)
    args = ", ".join([p.name for p in kernel.params] + ["x", "y", "z", "gx", "gy", "gz", "tb_disjoint", "arena"])
    launch = ["int32_t gx", "int32_t gy", "int32_t gz", "int32_t nthreads"]
    lines += [
        "",
        # `tb_disjoint`: the caller found the pointer arguments' memory disjoint (see `disjoint_check`).
        f"static int {kernel.name}_run({', '.join(launch + ['int32_t tb_disjoint'] + params)}) {{",
        "    int64_t total = (int64_t)gx * gy * gz;",
        "    if (total <= 0) return 0;",
        "    if (nthreads > total) nthreads = (int32_t)total;",
        "    int failed = 0;",
        # Each thread takes one contiguous run of programs (what schedule(static) would give it), fetches
        # its arena once and steps (x, y, z) along the run: no divisions per program.
        "    #pragma omp parallel num_threads(nthreads) if(nthreads > 1)",
        "    {",
        "        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num(), share = total / nt, extra = total % nt;",
        "        int64_t first = t * share + (t < extra ? t : extra), last = first + share + (t < extra);",
        f"        char* arena = first < last ? tb_arena({arena}) : 0;",
        "        if (first < last && !arena) failed = 1;",
        "        else if (first < last) {",
        "            tb_stream_state = -1;",
        *lockstep,
        "            int32_t x = (int32_t)(first % gx), y = (int32_t)((first / gx) % gy);",
        "            int32_t z = (int32_t)(first / ((int64_t)gx * gy));",
        "            for (int64_t p = first; p < last; p++) {",
        f"                {kernel.name}_program({args});",
        f"                tb_arena_check(arena, {arena});",
        "                if (++x == gx) { x = 0; if (++y == gy) { y = 0; z++; } }",
        "            }",
        "            tb_stream_fence();",
        "        }",
        "    }",
        "    return failed ? 1 : (tb_assert_failed ? 2 : 0);",
        "}",
        "",
        f"int {kernel.name}_launch({', '.join(launch + params)}) {{",
        f"    return {kernel.name}_run({', '.join(['gx', 'gy', 'gz', 'nthreads', '0'] + [p.name for p in kernel.params])});",
        "}",
    ]
    return "\n".join(lines + python_entry(kernel)) + "\n"


# How the Python entry point reads each parameter type from a Python object.
PY_SCALARS = {"i1": "PyObject_IsTrue({o})", "i8": "(int8_t)PyLong_AsLongLong({o})",
              "i16": "(int16_t)PyLong_AsLongLong({o})", "i32": "(int32_t)PyLong_AsLongLong({o})",
              "i64": "(int64_t)PyLong_AsLongLong({o})", "f32": "(float)PyFloat_AsDouble({o})",
              "f64": "PyFloat_AsDouble({o})", "f16": "(_Float16)PyFloat_AsDouble({o})",
              "bf16": "tb_f2bf((float)PyFloat_AsDouble({o}))"}


def python_entry(kernel: n.Kernel) -> list[str]:
    """A CPython entry point (module `tb_kernel`, function `launch`) that unpacks the launch arguments
    in C: a ctypes call with argument conversion costs several microseconds per launch, this one well
    under one. Tensors are checked to be on the CPU; a bad argument k returns -(k + 1) so the Python
    side can raise its full error message. Built only where Python's headers exist (TB_PYTHON)."""
    count = len(kernel.params)
    lines = ["", "#ifdef TB_PYTHON", "#define PY_SSIZE_T_CLEAN", "#include <Python.h>",
             "static int tb_huge_pages = 1;  /* TILEBRIDGE_HUGEPAGES=0 clears it at import */",
             "/* `extent`, where asked: the bytes of a contiguous tensor from data_ptr(), 0 for None, else -1;",
             "   `advise`: the kernel may write through it, so a fresh output's first touch is worth huge pages */",
             "static void* tb_py_pointer(PyObject* o, int* bad, long long* extent, int advise) {",
             "    if (extent) *extent = o == Py_None ? 0 : -1;",
             "    if (o == Py_None) return 0;",
             "    if (PyLong_Check(o)) return PyLong_AsVoidPtr(o);",
             "    static PyObject *is_cpu = 0, *data_ptr = 0, *nbytes = 0, *is_contiguous = 0;",
             '    if (!is_cpu) { is_cpu = PyUnicode_InternFromString("is_cpu"); '
             'data_ptr = PyUnicode_InternFromString("data_ptr"); nbytes = PyUnicode_InternFromString("nbytes"); '
             'is_contiguous = PyUnicode_InternFromString("is_contiguous"); }',
             "    PyObject* cpu = PyObject_GetAttr(o, is_cpu);",
             "    if (!cpu) { PyErr_Clear(); *bad = 1; return 0; }",
             "    int ok = cpu == Py_True; Py_DECREF(cpu);",
             "    if (!ok) { *bad = 1; return 0; }",
             "    PyObject* address = PyObject_CallMethodNoArgs(o, data_ptr);",
             "    if (!address) { PyErr_Clear(); *bad = 1; return 0; }",
             "    void* p = PyLong_AsVoidPtr(address); Py_DECREF(address);",
             "    if ((tb_huge_pages && advise) || extent) {",
             "        PyObject* size = PyObject_GetAttr(o, nbytes);",
             "        long long n = size ? PyLong_AsLongLong(size) : -1; Py_XDECREF(size);",
             "        int huge = tb_huge_pages && advise && n >= TB_HUGE_MIN_BYTES;",
             "        if (n >= 0 && (huge || extent)) {",
             "            PyObject* dense = PyObject_CallMethodNoArgs(o, is_contiguous);",
             "            if (dense == Py_True && huge) tb_advise_huge(p, n);",
             "            if (dense == Py_True && extent) *extent = n;",
             "            Py_XDECREF(dense);",
             "        }",
             "        PyErr_Clear();",
             "    }",
             "    return p;",
             "}",
             "static PyObject* tb_py_launch(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {",
             f'    if (nargs != {4 + count}) {{ PyErr_SetString(PyExc_TypeError, "launch takes {4 + count} arguments"); '
             "return NULL; }",
             "    int bad = 0;",
             "    int32_t grid[4];",
             "    for (int i = 0; i < 4; i++) grid[i] = (int32_t)PyLong_AsLong(args[i]);"]
    written = written_params(kernel)
    for k, p in enumerate(kernel.params):
        obj = f"args[{4 + k}]"
        if is_pointer(p.dtype):
            extent = f"&tb_extent_{k}" if kernel.disjoint_form else "0"
            if kernel.disjoint_form:
                lines.append(f"    long long tb_extent_{k};")
            advise = int(p.name in written)
            lines.append(f"    {c_type(p.dtype)} {p.name} = ({c_type(p.dtype)})tb_py_pointer({obj}, &bad, {extent}, {advise});")
            lines.append(f"    if (bad) return PyLong_FromLong(-{k + 1});")
        else:
            lines.append(f"    {c_type(p.dtype)} {p.name} = {PY_SCALARS[p.dtype].format(o=obj)};")
    lines += disjoint_check(kernel)
    call_args = ", ".join(["grid[0]", "grid[1]", "grid[2]", "grid[3]", "tb_disjoint"] + [p.name for p in kernel.params])
    lines += ["    if (PyErr_Occurred()) return NULL;",
              "    int status;",
              "    Py_BEGIN_ALLOW_THREADS",
              f"    status = {kernel.name}_run({call_args});",
              "    Py_END_ALLOW_THREADS",
              "    return PyLong_FromLong(status);",
              "}",
              'static PyMethodDef tb_methods[] = {{"launch", (PyCFunction)(void(*)(void))tb_py_launch, METH_FASTCALL, 0}, '
              "{0, 0, 0, 0}};",
              'static struct PyModuleDef tb_module = {PyModuleDef_HEAD_INIT, "tb_kernel", 0, -1, tb_methods};',
              "PyMODINIT_FUNC PyInit_tb_kernel(void) {",
              '    const char* huge = getenv("TILEBRIDGE_HUGEPAGES"); tb_huge_pages = !(huge && huge[0] == \'0\');',
              "    return PyModule_Create(&tb_module);",
              "}",
              "#endif"]
    return lines


def disjoint_check(kernel: n.Kernel) -> list[str]:
    """For a kernel with a disjoint form: `tb_disjoint` = 1 when every pointer argument is None or a
    contiguous CPU tensor (its memory: data_ptr() for nbytes, as `tb_py_pointer` measured it) and no
    two of them overlap. A raw address, or a strided view (whose reach nbytes does not give), keeps the
    general form, as does the ctypes route (`_launch` passes 0)."""
    if not kernel.disjoint_form:
        return ["    int32_t tb_disjoint = 0;"]
    pointers = [(k, p) for k, p in enumerate(kernel.params) if is_pointer(p.dtype)]
    return [f"    uintptr_t tb_lo[{len(pointers)}] = {{{', '.join(f'(uintptr_t){p.name}' for _, p in pointers)}}};",
            f"    long long tb_len[{len(pointers)}] = {{{', '.join(f'tb_extent_{k}' for k, _ in pointers)}}};",
            "    int32_t tb_disjoint = 1;",
            f"    for (int i = 0; i < {len(pointers)}; i++) {{",
            "        if (tb_len[i] < 0) tb_disjoint = 0;",
            "        for (int j = 0; j < i; j++)",
            "            if (tb_lo[i] < tb_lo[j] + tb_len[j] && tb_lo[j] < tb_lo[i] + tb_len[i]) tb_disjoint = 0;",
            "    }"]


def render_kernel_text(src) -> str:
    """The `c` stage: `src` is the `tbir` stage's output, which carries the IR kernel object."""
    kernel = getattr(src, "kernel", None)
    if kernel is None:
        raise RuntimeError("the C stage needs the IR kernel produced by the tbir stage in the same compilation")
    return render_kernel(kernel)
