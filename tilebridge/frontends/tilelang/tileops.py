"""TileLang tile operators (`tl.tileop.*` calls over `tl.region` operands) → loops over program buffers.

A region is a buffer, a start index per dimension and a static extent per dimension. Copies match the
two regions' non-unit extents (`T.copy(A[by * bm, k * bk], A_s)` copies a (bm, bk) window), guard
global accesses with the tensor's bounds (reads outside give 0, writes outside are dropped, as on the
GPU), and keep the last dimension innermost so the loop vectorizes. `T.gemm` in fp32 calls the runtime
header's tile product `tb_dot_f32` on row-major buffers; B given transposed is taken as it lies and
transposed in cache (`tb_transpose32`); operands in any other form are copied into such buffers first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tilebridge.codegen.routines import DOT_PRODUCTS, TRANSPOSES
from tilebridge.frontends.tilelang.exprs import UnsupportedConstruct, constant
from tilebridge.ir import nodes as n
from tilebridge.ir.types import is_float

I32 = "i32"


@dataclass
class Region:
    buffer: object  # the tvm Buffer
    starts: list  # IR expressions
    extents: list  # ints

    @property
    def shape(self) -> tuple:
        """The extents that are not 1: how a copy or fill walks the region."""
        return tuple(e for e in self.extents if e != 1)


def static(value, what: str) -> int:
    if type(value).__name__ != "IntImm":
        raise UnsupportedConstruct(f"{what} must be a compile-time constant, got {value}")
    return int(value.value)


class TileOpLowering:
    """Mixed into the kernel lowering (which provides expr, load, store, lookup, emit, nested, fresh)."""

    def region(self, arg) -> Region:
        kind = type(arg).__name__
        if kind == "Call" and arg.op.name == "tl.region":
            load = arg.args[0]
            extents = [static(e, "a tile extent") for e in arg.args[2:]]
            indices = list(load.indices)
            # The extents cover the trailing dimensions; leading ones are single elements.
            extents = [1] * (len(indices) - len(extents)) + extents
            return Region(load.buffer, [self.expr(i) for i in indices], extents)
        if kind == "BufferRegion":
            return Region(arg.buffer, [self.expr(r.min) for r in arg.region],
                          [static(r.extent, "a tile extent") for r in arg.region])
        if kind == "BufferLoad":
            return Region(arg.buffer, [self.expr(i) for i in arg.indices], [1] * len(arg.indices))
        raise UnsupportedConstruct(f"tile operand {arg} is not a buffer region")

    def is_global(self, region: Region) -> bool:
        return region.buffer.data in self.globals

    def loop_nest(self, shape: tuple, body_fn) -> None:
        """Loops over `shape`, the last one vectorizable; `body_fn(indices)` emits the body."""
        self.full_nest(shape, body_fn)

    def element(self, region: Region, idx: list) -> tuple[list, n.Expr | None]:
        """Full indices of the region's element at walk position `idx`, and the in-bounds condition
        for a global buffer (None when no check applies)."""
        full, k = [], 0
        for start, extent in zip(region.starts, region.extents):
            if extent == 1:
                full.append(start)
            else:
                full.append(idx[k] if isinstance(start, n.Const) and start.value == 0 else n.Binary("add", start, idx[k], I32))
                k += 1
        if not self.is_global(region):
            return full, None
        shape = self.lookup(region.buffer).shape
        cond = None
        for i, extent, dim in zip(full, region.extents, shape):
            if extent == 1 and isinstance(i, n.Const):
                continue
            term = n.Binary("lt", i, dim if dim.dtype == I32 else n.Cast(dim, I32), "i1")
            cond = term if cond is None else n.Binary("and", cond, term, "i1")
        return full, cond

    def signed_only(self, what: str, *buffers) -> None:
        """Reductions, scans, products and atomics combine in the stored type: unsigned ones are refused."""
        for buffer in buffers:
            if str(buffer.dtype).startswith("uint"):
                raise UnsupportedConstruct(f"{what} on {buffer.dtype} buffer {buffer.name!r} is not supported by "
                                           "tilebridge's CPU backend")

    def dtype_of(self, region: Region) -> str:
        target = self.lookup(region.buffer)
        return target.dtype if hasattr(target, "pointer") else target.buffer.dtype

    # ---- tile operators ----
    def op_copy(self, call) -> None:
        src, dst = self.region(call.args[0]), self.region(call.args[1])
        if src.shape != dst.shape:
            if math.prod(src.shape) != math.prod(dst.shape):
                raise UnsupportedConstruct(f"T.copy between regions of shapes {src.extents} and {dst.extents}")
            raise UnsupportedConstruct(f"T.copy that reshapes {src.extents} into {dst.extents} is not supported yet")
        dst_dtype = self.dtype_of(dst)

        def body(idx):
            src_index, src_ok = self.element(src, idx)
            dst_index, dst_ok = self.element(dst, idx)
            value = self.load(src.buffer, src_index)
            value = value if value.dtype == dst_dtype else n.Cast(value, dst_dtype)
            if src_ok is not None:
                value = n.Select(src_ok, value, constant(0, dst_dtype), dst_dtype)
            write = self.store(dst.buffer, dst_index, value)
            self.emit(write if dst_ok is None else n.If(dst_ok, [write]))
        self.loop_nest(src.shape, body)

    def op_fill(self, call) -> None:
        dst = self.region(call.args[0])
        dtype = self.dtype_of(dst)
        value = self.expr(call.args[1])
        value = value if value.dtype == dtype else n.Cast(value, dtype)

        def body(idx):
            index, ok = self.element(dst, idx)
            write = self.store(dst.buffer, index, value)
            self.emit(write if ok is None else n.If(ok, [write]))
        self.loop_nest(dst.shape, body)

    # ---- reducers (T.alloc_reducer, v2): one copy per program, updated in program order ----
    def reducer_op(self, buffer) -> str:
        self.signed_only("a reducer", buffer)
        op = self.reducer_ops.get(buffer.data)
        if op is None:
            raise UnsupportedConstruct(f"{buffer.name!r} is not a T.alloc_reducer reducer")
        if op not in REDUCTIONS:
            raise UnsupportedConstruct(f"a reducer combining with {op!r} is not supported by tilebridge's CPU backend")
        return op

    def op_reducer_init(self, call) -> None:
        """The reduction starts from `init` (one extra contribution) or the combine's identity."""
        dst = self.region(call.args[0])
        dtype = self.dtype_of(dst)
        identity = REDUCTIONS[self.reducer_op(dst.buffer)][0]
        value = self.expr(call.args[1]) if len(call.args) > 1 else constant(identity(dtype), dtype)
        value = value if value.dtype == dtype else n.Cast(value, dtype)
        self.loop_nest(dst.shape, lambda idx: self.emit(self.store(dst.buffer, self.element(dst, idx)[0], value)))

    def op_reducer_update(self, call) -> None:
        target = call.args[0]
        _, combine, _ = REDUCTIONS[self.reducer_op(target.buffer)]
        index = [self.expr(i) for i in target.indices]
        dtype = self.dtype_of(Region(target.buffer, [], []))
        value = self.expr(call.args[1])
        value = value if value.dtype == dtype else n.Cast(value, dtype)
        self.emit(self.store(target.buffer, index, combine(self.load(target.buffer, index), value, dtype)))

    def op_finalize_reducer_v2(self, call) -> None:
        """Nothing is left to combine across threads: the result is copied into `dst`."""
        self.op_copy(call)

    def op_reduce(self, call) -> None:
        """`out[...] = combine over dim of src[...]`; without `clear` the old `out` joins the reduction.

        Along the last dimension each row folds into LANES partial results first (lane j takes
        elements j, j + LANES, ...), so the C compiler vectorizes the fold; along another dimension the
        output row itself accumulates, its loop innermost. Both reassociate, as GPU reductions do."""
        src, dst = self.region(call.args[0]), self.region(call.args[1])
        self.signed_only("T.reduce", src.buffer, dst.buffer)
        kind, dim, clear = str(call.args[2].value), static(call.args[3], "the reduce dim"), static(call.args[4], "clear")
        if kind not in REDUCTIONS:
            raise UnsupportedConstruct(f"T.reduce of kind {kind!r} is not supported by tilebridge's CPU backend")
        if self.is_global(src) or self.is_global(dst):
            raise UnsupportedConstruct("T.reduce over a global buffer: copy it into a fragment first")
        shape = tuple(src.extents)
        dim = dim % len(shape)
        kept = shape[:dim] + shape[dim + 1:]
        dtype = self.dtype_of(dst)
        identity, combine, transform = REDUCTIONS[kind]

        def out_index(kept_idx):
            return self.element(dst, [i for i, e in zip(kept_idx, kept) if e != 1])[0]

        def term(full_idx):
            value = self.load(src.buffer, self.element(src, [i for i, e in zip(full_idx, shape) if e != 1])[0])
            return transform(value if value.dtype == dtype else n.Cast(value, dtype), dtype)

        if dim != len(shape) - 1:
            if clear:
                init = constant(identity(dtype), dtype)
                self.full_nest(kept, lambda idx: self.emit(self.store(dst.buffer, out_index(idx), init)))
            self.full_nest(shape, lambda idx: self.emit(self.store(
                dst.buffer, out_index(idx[:dim] + idx[dim + 1:]),
                combine(self.load(dst.buffer, out_index(idx[:dim] + idx[dim + 1:])), term(idx), dtype))))
            return
        R = shape[dim]
        lanes = n.Buffer(self.fresh("lanes"), dtype, LANES) if R >= 2 * LANES else None
        if lanes is not None:
            self.buffers.append(lanes)
        # Float max/min lanes start from the identity and take each element with one ordered compare-select
        # (see tilebridge.h): a lane never holds NaN, and joining the identity changes no maxNum but one of
        # NaNs alone. A cleared reduction has the identity among its operands anyway; an old value that is
        # NaN, with a row of NaNs, would end at the identity instead of NaN, so that row folds again exactly.
        ordered = ORDERED_LANES.get(kind) if is_float(dtype) and lanes is not None else None
        lane_combine = (lambda a, x, d: n.Binary(ordered, a, x, d)) if ordered else combine
        first = (lambda x: lane_combine(constant(identity(dtype), dtype), x, dtype)) if ordered else (lambda x: x)

        def row(out_idx):
            acc = n.Var(self.fresh("acc"), dtype)
            index = out_index(out_idx)
            old = None if clear else n.Var(self.fresh("old"), dtype)
            if old is not None:
                self.emit(n.Declare(old, self.load(dst.buffer, index)))
            self.emit(n.Declare(acc, constant(identity(dtype), dtype) if clear else old))
            start = 0
            if lanes is not None:
                start = R - R % LANES
                self.loop_nest((LANES,), lambda j: self.emit(n.BufWrite(lanes, j[0], first(term(out_idx + [j[0]])))))
                r0 = n.Var(self.fresh("r"), I32)
                fold = self.nested(lambda: self.loop_nest((LANES,), lambda j: self.emit(n.BufWrite(
                    lanes, j[0], lane_combine(n.BufRead(lanes, j[0]), term(out_idx + [n.Binary("add", r0, j[0], I32)]), dtype)))))
                self.emit(n.For(r0, n.Const(LANES, I32), n.Const(start, I32), n.Const(LANES, I32), fold))
                j = n.Var(self.fresh("j"), I32)
                self.emit(n.For(j, n.Const(0, I32), n.Const(LANES, I32), n.Const(1, I32),
                                [n.Assign(acc, combine(acc, n.BufRead(lanes, j), dtype))]))
            def fold_from(first: int) -> n.For:  # acc = combine(acc, term) over [first, R), one element at a time
                r = n.Var(self.fresh("r"), I32)
                return n.For(r, n.Const(first, I32), n.Const(R, I32), n.Const(1, I32),
                             [n.Assign(acc, combine(acc, term(out_idx + [r]), dtype))])
            self.emit(fold_from(start))
            if ordered and old is not None:
                at_identity = n.Binary("eq", acc, constant(identity(dtype), dtype), "i1")
                self.emit(n.If(n.Binary("and", at_identity, n.Binary("ne", old, old, "i1"), "i1"),
                               [n.Assign(acc, old), fold_from(0)]))
            self.emit(self.store(dst.buffer, index, acc))
        self.full_nest(kept, row, vectorize=False)

    def op_scan(self, call, kind: str) -> None:
        """`T.cumsum` / `T.cummax` along `dim` (inclusive; `reverse` scans from the end). Each element is
        read before its output is written, so a scan in place is safe."""
        src, dst = self.region(call.args[0]), self.region(call.args[1])
        self.signed_only(f"T.cum{kind}", src.buffer, dst.buffer)
        dim, reverse = static(call.args[2], "the scan dim"), static(call.args[3], "reverse")
        if src.shape != dst.shape:
            raise UnsupportedConstruct(f"T.cum{kind} from extents {src.extents} into {dst.extents}")
        shape = tuple(src.extents)
        dim = dim % len(shape)
        dtype = self.dtype_of(dst)
        identity, combine, _ = REDUCTIONS[kind]

        def line(kept_idx):
            acc = n.Var(self.fresh("acc"), dtype)
            self.emit(n.Declare(acc, constant(identity(dtype), dtype)))
            r = n.Var(self.fresh("r"), I32)
            at = n.Binary("sub", n.Const(shape[dim] - 1, I32), r, I32) if reverse else r
            full = kept_idx[:dim] + [at] + kept_idx[dim:]
            walk = [i for i, e in zip(full, shape) if e != 1]
            value = self.load(src.buffer, self.element(src, walk)[0])
            value = value if value.dtype == dtype else n.Cast(value, dtype)
            body = [n.Assign(acc, combine(acc, value, dtype)), self.store(dst.buffer, self.element(dst, walk)[0], acc)]
            self.emit(n.For(r, n.Const(0, I32), n.Const(shape[dim], I32), n.Const(1, I32), body))
        self.full_nest(shape[:dim] + shape[dim + 1:], line, vectorize=False)

    def full_nest(self, shape: tuple, body_fn, vectorize: bool = True) -> None:
        """Loops over every dimension of `shape` (extent-1 ones too, so positions line up with it)."""
        idx = [n.Var(self.fresh("i"), I32) for _ in shape]
        body = self.nested(lambda: body_fn(idx))
        for k in reversed(range(len(shape))):
            body = [n.For(idx[k], n.Const(0, I32), n.Const(shape[k], I32), n.Const(1, I32), body,
                          vectorize=vectorize and k == len(shape) - 1)]
        self.stmts.extend(body)

    def op_gemm(self, call) -> None:
        """C (M, N) += op(A) (M, K) @ op(B) (K, N), op a transpose where the flag says so."""
        a, b, c = (self.region(x) for x in call.args[:3])
        self.signed_only("T.gemm", a.buffer, b.buffer, c.buffer)
        trans_a, trans_b = static(call.args[3], "transpose_A"), static(call.args[4], "transpose_B")
        M, N, K = (static(x, "a gemm size") for x in call.args[5:8])
        acc = self.dtype_of(c)
        if acc not in DOT_PRODUCTS:
            raise UnsupportedConstruct(f"T.gemm accumulating in {acc} is not supported by tilebridge's CPU backend")
        A = self.gemm_operand(a, (M, K), trans_a, acc, "gemm_a")
        # B given transposed (attention's keys, `transpose_B=True`) is taken as it lies, N x K (where a
        # program buffer holds it so, else copied unit-stride), and transposed in cache
        if trans_b and acc in TRANSPOSES:
            lying = self.gemm_operand(b, (N, K), False, acc, "gemm_bt")
            B = n.Buffer(self.fresh("gemm_b"), acc, K * N)
            self.buffers.append(B)
            self.emit(n.Intrinsic(TRANSPOSES[acc], (n.Const(N, I32), n.Const(K, I32), lying, B)))
        else:
            B = self.gemm_operand(b, (K, N), trans_b, acc, "gemm_b")
        C = self.row_major(c, (M, N), acc)
        into = C if C is not None else n.Buffer(self.fresh("gemm_c"), acc, M * N)
        if C is None:
            self.buffers.append(into)
        clear, kernel = call.args[9], DOT_PRODUCTS[acc]
        zero_loop = self.nested(lambda: self.loop_nest((M * N,), lambda idx: self.emit(
            n.BufWrite(into, idx[0], constant(0, acc)))))
        if type(clear).__name__ == "IntImm" and clear.value:
            if acc == "f32":
                kernel += "_set"  # starts its accumulators at zero: no pass that zeroes C first
            else:
                self.stmts.extend(zero_loop)
        elif C is None:  # the accumulator lives elsewhere: bring it in, multiply, write it back
            self.copy_region(c, into, (M, N), False, to_buffer=True)
        if type(clear).__name__ != "IntImm":
            self.emit(n.If(self.expr(clear), zero_loop))
        self.emit(n.Intrinsic(kernel, (n.Const(M, I32), n.Const(N, I32), n.Const(K, I32), A, B, into)))
        if C is None:
            self.copy_region(c, into, (M, N), False, to_buffer=False)

    # ---- atomics: programs run on many threads at once, so updates of global memory stay atomic ----
    def atomic_update(self, kind: str, buffer, index: list, value: n.Expr, result: n.Var | None = None) -> None:
        """`buffer[index] = combine(buffer[index], value)`: an atomic instruction on global memory, a plain
        read-modify-write on a program buffer (only its own program sees it)."""
        self.signed_only(f"T.atomic_{kind}", buffer)
        target = self.lookup(buffer)
        dtype = self.dtype_of(Region(buffer, [], []))
        value = value if value.dtype == dtype else n.Cast(value, dtype)
        if hasattr(target, "pointer"):
            op = "fadd" if kind == "add" and is_float(dtype) else kind
            self.emit(n.Atomic(op, self.address(target, index), value, result))
            return
        old = self.load(buffer, index)
        if result is not None:
            self.emit(n.Assign(result, old))
        combine = {"add": lambda a, b: n.Binary("add", a, b, dtype), "max": lambda a, b: _max(a, b, dtype),
                   "min": lambda a, b: _min(a, b, dtype)}[kind]
        self.emit(self.store(buffer, index, combine(old, value)))

    def op_atomic_element(self, call, kind: str, returns: bool = False) -> n.Expr | None:
        """`T.atomic_add(dst[i], v)` on one element: `tl.atomic_*_elem_op(T.access_ptr(dst[i]), v)`."""
        pointer = call.args[0]
        if type(pointer).__name__ != "Call" or pointer.op.name != "tl.access_ptr":
            raise UnsupportedConstruct(f"atomic on {pointer}: only T.access_ptr destinations are supported")
        load = pointer.args[0]
        index = [self.expr(i) for i in load.indices]
        result = None
        if returns:
            result = n.Var(self.fresh("old"), self.dtype_of(Region(load.buffer, [], [])))
            self.emit(n.Declare(result))
        self.atomic_update(kind, load.buffer, index, self.expr(call.args[1]), result)
        return result

    def op_atomic_tile(self, call, kind: str) -> None:
        """`T.atomic_add(dst_tile, src_tile_or_scalar)`: one atomic update per element of the region."""
        value_arg, dst = call.args[0], self.region(call.args[1])
        src = self.region(value_arg) if type(value_arg).__name__ in ("Call", "BufferRegion") and (
            type(value_arg).__name__ == "BufferRegion" or value_arg.op.name == "tl.region") else None
        if src is not None and src.shape != dst.shape:
            raise UnsupportedConstruct(f"T.atomic_{kind} between regions of extents {src.extents} and {dst.extents}")
        scalar = self.expr(value_arg) if src is None else None

        def body(idx):
            index, ok = self.element(dst, idx)
            if src is not None:
                src_index, src_ok = self.element(src, idx)
                value = self.load(src.buffer, src_index)
            else:
                value = scalar
            update = self.nested(lambda: self.atomic_update(kind, dst.buffer, index, value))
            self.stmts.extend(update if ok is None else [n.If(ok, update)])
        self.loop_nest(dst.shape, body)

    def row_major(self, region: Region, shape: tuple, dtype: str) -> n.Buffer | None:
        """The program buffer that holds `region` exactly, row-major, as `dtype` (a whole local buffer), or None."""
        target = self.locals.get(region.buffer.data)
        if (target is None or target.private or target.buffer.dtype != dtype or tuple(d for d in target.shape if d != 1) != shape
                or not all(isinstance(s, n.Const) and s.value == 0 for s in region.starts)):
            return None
        return target.buffer

    def gemm_operand(self, region: Region, shape: tuple, transposed: bool, dtype: str, stem: str) -> n.Buffer:
        if not transposed:
            direct = self.row_major(region, shape, dtype)
            if direct is not None:
                return direct
        buf = n.Buffer(self.fresh(stem), dtype, shape[0] * shape[1])
        self.buffers.append(buf)
        self.copy_region(region, buf, shape, transposed, to_buffer=True)
        return buf

    def copy_region(self, region: Region, buf: n.Buffer, shape: tuple, transposed: bool, to_buffer: bool) -> None:
        """Copy a 2-D region into (or out of) a row-major (rows, cols) buffer; a transposed region
        holds the matrix as (cols, rows) and is walked in its own order, so its reads stay contiguous."""
        rows, cols = shape
        walk = (cols, rows) if transposed else (rows, cols)
        if tuple(region.extents[-2:]) != walk or math.prod(region.extents) != rows * cols:
            raise UnsupportedConstruct(f"T.gemm operand of extents {region.extents} does not match {walk}")

        def body(idx):
            index, ok = self.element(region, [i for i, e in zip(idx, walk) if e != 1])
            r, c = (idx[1], idx[0]) if transposed else (idx[0], idx[1])
            position = n.Binary("add", n.Binary("mul", r, n.Const(cols, I32), I32), c, I32)
            if to_buffer:
                value = self.load(region.buffer, index)
                value = value if value.dtype == buf.dtype else n.Cast(value, buf.dtype)
                if ok is not None:
                    value = n.Select(ok, value, constant(0, buf.dtype), buf.dtype)
                self.emit(n.BufWrite(buf, position, value))
            else:
                write = self.store(region.buffer, index, n.BufRead(buf, position))
                self.emit(write if ok is None else n.If(ok, [write]))
        self.loop_nest(walk, body)


LANES = 16  # partial results per row in a last-dimension reduction: one 64-byte vector of fp32


def lowest(dtype: str):
    return -math.inf if is_float(dtype) else -(1 << (8 * {"i8": 1, "i16": 2, "i32": 4, "i64": 8}[dtype] - 1))


def highest(dtype: str):
    return math.inf if is_float(dtype) else (1 << (8 * {"i8": 1, "i16": 2, "i32": 4, "i64": 8}[dtype] - 1)) - 1


def _max(a, b, dtype):
    return n.Binary("fmax" if is_float(dtype) else "max", a, b, dtype)


def _min(a, b, dtype):
    return n.Binary("fmin" if is_float(dtype) else "min", a, b, dtype)


def _abs(x, dtype):
    return n.Unary("abs" if is_float(dtype) else "iabs", x, dtype)


def _same(x, dtype):
    return x


# kind → (identity(dtype), combine(acc, x, dtype), transform(x, dtype))
REDUCTIONS = {
    "sum": (lambda d: 0, lambda a, x, d: n.Binary("add", a, x, d), _same),
    "abssum": (lambda d: 0, lambda a, x, d: n.Binary("add", a, x, d), _abs),
    "max": (lowest, _max, _same),
    "absmax": (lambda d: 0, _max, _abs),
    "min": (highest, _min, _same),
    "bitand": (lambda d: -1, lambda a, x, d: n.Binary("and", a, x, d), _same),
    "bitor": (lambda d: 0, lambda a, x, d: n.Binary("or", a, x, d), _same),
    "bitxor": (lambda d: 0, lambda a, x, d: n.Binary("xor", a, x, d), _same),
}

# Reductions whose lanes may combine with an ordered compare-select once they start from the identity.
ORDERED_LANES = {"max": "fmax_acc", "absmax": "fmax_acc", "min": "fmin_acc"}

TILE_OPS = {
    "tl.tileop.copy": TileOpLowering.op_copy,
    "tl.tileop.fill": TileOpLowering.op_fill,
    "tl.tileop.reduce": TileOpLowering.op_reduce,
    "tl.tileop.gemm": TileOpLowering.op_gemm,
    "tl.tileop.gemm_py": TileOpLowering.op_gemm,
    "tl.tileop.cumsum": lambda self, call: self.op_scan(call, "sum"),
    "tl.tileop.cummax": lambda self, call: self.op_scan(call, "max"),
    # A barrier orders a block's threads; a program runs its whole block on one CPU thread, in program
    # order (thread indices are refused), so there is nothing to wait for.
    "tirx.tvm_storage_sync": lambda self, call: None,
    # T.alloc_reducer keeps a copy per GPU thread that T.finalize_reducer combines; a program here has one
    # copy, updated in program order, which is already the combined value.
    "tl.tileop.finalize_reducer": lambda self, call: None,
    "tl.tileop.finalize_reducer_v2": TileOpLowering.op_finalize_reducer_v2,
    "tl.tileop.reducer_init": TileOpLowering.op_reducer_init,
    "tl.reducer_update": TileOpLowering.op_reducer_update,
    **{f"tl.tileop.atomic{kind}": (lambda kind: lambda self, call: self.op_atomic_tile(call, kind))(kind)
       for kind in ("add", "max", "min")},
    **{f"tl.atomic_{kind}_elem_op": (lambda kind: lambda self, call: self.op_atomic_element(call, kind))(kind)
       for kind in ("add", "max", "min")},
}

# Atomics that return the previous value are expressions (`old = T.atomic_add(x[i], v, return_prev=True)`).
ATOMIC_RETURNING = {f"tl.atomic_{kind}_ret_elem_op": (lambda kind: lambda self, call, dtype:
                                                         self.op_atomic_element(call, kind, returns=True))(kind)
                    for kind in ("add", "max", "min")}
