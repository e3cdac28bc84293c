"""Lowering of the computing tile ops: reductions (lane-parallel), scans, dot, histogram."""
from __future__ import annotations

from tilebridge.codegen.routines import DOT_PRODUCTS, TRANSPOSES
from tilebridge.frontends.triton.tiles import (
    EXPENSIVE_COST,
    I32,
    REDUCE_LANES,
    VECTOR_LANES,
    TVal,
    buffer_from,
    c0,
    derived,
    linear_index,
    numel,
)
from tilebridge.frontends.triton.ttir import Block, Op, TType
from tilebridge.ir import nodes as n
from tilebridge.ir.types import is_float

# Single-op max/min reductions of one float tile: their lanes start from the op's identity and take each
# element with an ordered compare-select (one vmaxps/vminps a vector, not maxNum's four operations). A lane
# then never holds NaN, which is all the select needs to be maxNum exactly, except for a row of NaNs
# alone: it would end at the identity rather than at NaN, so a row ending there is folded again exactly.
ORDERED_REDUCTIONS = {"arith.maxnumf": ("fmax_acc", float("-inf")), "arith.minnumf": ("fmin_acc", float("inf"))}


def single_combine(region: Block) -> str | None:
    """The op of a combine region that applies one binary op to its two arguments, else None."""
    if len(region.ops) == 2 and len(region.args) == 2 and region.ops[0].operands == [name for name, _ in region.args]:
        body, term = region.ops
        if term.operands == [body.results[0][0]]:
            return body.name
    return None


class ComputeLowering:
    """Mixed into `Lowerer`; uses its emission and materialization helpers."""

    # ---- reductions, scans, dot ----
    def combine(self, region: Block, env: dict, values: list) -> list:
        """Lower a combine region on scalar expressions; return the results as materialized scalars."""
        inner = dict(env)
        for (name, ty), value in zip(region.args, values):
            inner[name] = TVal(ty, lambda idx, v=value: v, materialized=True)
        saved = self.op
        term = self.lower_block(region, inner)
        self.op = saved
        return [inner[name].scalar() for name in term.operands]

    def combine_into(self, region: Block, env: dict, buffers: list, pos: n.Expr, values: list) -> None:
        """buffers[pos] = combine(buffers[pos], values), one buffer per reduced operand. The results go
        through temporaries: the combine of every operand reads all of the old values."""
        new = self.combine(region, env, [n.BufRead(b, pos) for b in buffers] + values)
        temps = [n.Var(self.fresh("nv"), b.dtype) for b in buffers]
        for t, v in zip(temps, new):
            self.emit(n.Declare(t, v))
        for b, t in zip(buffers, temps):
            self.emit(n.BufWrite(b, pos, t))

    def op_reduce(self, op: Op, args: list, env: dict) -> list:
        axis = int(op.attrs["axis"])
        shape = args[0].shape
        R = shape[axis]
        outer, inner_shape = shape[:axis], shape[axis + 1:]
        out_shape = outer + inner_shape
        region = op.regions[0]
        dtypes = [a.dtype for a in args]
        self.consumed(*args)
        for a in args:
            if a.cost > EXPENSIVE_COST and R > 1 and inner_shape:
                self.materialize(a)
        filled = [a for a in args if a.fill is not None]
        plain = list(args)  # generators that only compute: a second, exact fold must not store the tile again
        args = [self.filling(a) if a.fill is not None else a for a in args]

        def full(o_idx, r, i_idx):
            return o_idx + (r,) + i_idx

        if not inner_shape or all(d == 1 for d in inner_shape):
            # reduce along the innermost axis: a scalar accumulator per output element
            outs = [self.new_buffer(d, max(1, numel(out_shape)), "red") if out_shape else n.Var(self.fresh("red"), d)
                    for d in dtypes]
            for o in outs:
                if isinstance(o, n.Var):
                    self.emit(n.Declare(o))
            zeros = tuple(c0() for _ in inner_shape)

            # 64 lanes (four vector chains) pay off from 256 elements on; shorter rows fold into 16
            lanes = next((n_lanes for n_lanes, least in ((REDUCE_LANES, 4), (VECTOR_LANES, 2)) if R >= least * n_lanes), 0)
            partials = [self.new_buffer(d, lanes, "lanes") for d in dtypes] if lanes else []
            ordered = ORDERED_REDUCTIONS.get(single_combine(region)) if lanes and dtypes in (["f32"], ["f64"]) else None

            def body(o_idx):
                at = lambda r: full(o_idx, r, zeros)  # noqa: E731
                accs = [n.Var(self.fresh("acc"), d) for d in dtypes]
                start = c0(1)
                if lanes:
                    self.reduce_lanes(region, env, args, partials, at, R, ordered)
                    start = c0(R - R % lanes)
                    for acc, p in zip(accs, partials):
                        self.emit(n.Declare(acc, n.BufRead(p, c0())))
                else:
                    for acc, a in zip(accs, args):
                        self.emit(n.Declare(acc, a.gen(at(c0()))))
                self.fold(region, env, accs, lambda r: [a.gen(at(r)) for a in args], start, R)
                if ordered:
                    self.refold_if_identity(region, env, accs[0], ordered[1], lambda r: [a.gen(at(r)) for a in plain], R)
                for o, acc in zip(outs, accs):
                    if isinstance(o, n.Var):
                        self.emit(n.Assign(o, acc))
                    else:
                        self.emit(n.BufWrite(o, linear_index(o_idx + zeros, out_shape), acc))
            if outer:
                self.loop_nest(outer, body, vectorize=False)
            else:
                body(())
        else:
            # reduce along an outer axis: accumulate whole rows, vectorized over the inner dims
            outs = [self.new_buffer(d, numel(out_shape), "red") for d in dtypes]

            def body(o_idx):
                def init(i_idx):
                    for o, a in zip(outs, args):
                        self.emit(n.BufWrite(o, linear_index(o_idx + i_idx, out_shape), a.gen(full(o_idx, c0(), i_idx))))
                self.loop_nest(inner_shape, init)
                r = n.Var(self.fresh("r"), I32)
                outer_stmts, loop_body = self.stmts, []
                self.stmts = loop_body
                self.loop_nest(inner_shape, lambda i_idx: self.combine_into(
                    region, env, outs, linear_index(o_idx + i_idx, out_shape), [a.gen(full(o_idx, r, i_idx)) for a in args]))
                self.stmts = outer_stmts
                self.emit(n.For(r, c0(1), c0(R), c0(1), loop_body))
            if outer:
                self.loop_nest(outer, body, vectorize=False)
            else:
                body(())
        for a in filled:  # every element was stored on the way: later uses read the tile
            self.pending = [p for p in self.pending if p is not a]
            self.read_buffer(a, a.fill)
            a.fill = None
        results = []
        for (_, ty), o in zip(op.results, outs):
            if isinstance(o, n.Var):
                results.append(TVal(ty, lambda idx, v=o: v, materialized=True))
            else:
                tv = TVal(ty, None)
                self.read_buffer(tv, o)
                results.append(tv)
        return results

    def filling(self, tv: TVal) -> TVal:
        """`tv`, whose generator also stores each element it yields into `tv.fill` (so each index must
        be generated exactly once, as a reduction's passes do)."""
        buf, shape, gen = tv.fill, tv.shape, tv.gen

        def gen_and_store(idx):
            value = n.Var(self.fresh("f"), tv.dtype)
            self.emit(n.Declare(value, gen(idx)))
            self.emit(n.BufWrite(buf, linear_index(idx, shape), value))
            return value
        return TVal(tv.type, gen_and_store, tv.cost, tv.loads, tv.reads)

    def fold(self, region: Block, env: dict, accs: list, values, start, stop: int) -> None:
        """for r in [start, stop): accs = combine(accs, values(r)) — a sequential fold."""
        start = c0(start) if isinstance(start, int) else start
        if isinstance(start, n.Const) and start.value >= stop:
            return
        r = n.Var(self.fresh("r"), I32)
        outer_stmts, loop_body = self.stmts, []
        self.stmts = loop_body
        new = self.combine(region, env, list(accs) + values(r))
        for acc, v in zip(accs, new):
            self.emit(n.Assign(acc, v))
        self.stmts = outer_stmts
        self.emit(n.For(r, start, c0(stop), c0(1), loop_body))

    def refold_if_identity(self, region: Block, env: dict, acc: n.Var, identity: float, values, R: int) -> None:
        """After an ordered max/min fold (ORDERED_REDUCTIONS): if the row folded to the identity, fold it
        again with the exact combine, which gives NaN where every element is NaN. Rare, so it may be slow."""
        outer_stmts, branch = self.stmts, []
        self.stmts = branch
        self.emit(n.Assign(acc, values(c0())[0]))
        self.fold(region, env, [acc], values, 1, R)
        self.stmts = outer_stmts
        self.emit(n.If(n.Binary("eq", acc, n.Const(identity, acc.dtype), "i1"), branch))

    def reduce_lanes(self, region: Block, env: dict, args: list, partials: list, at, R: int,
                     ordered: tuple[str, float] | None = None) -> None:
        """Fold a row into REDUCE_LANES partial results, lane j taking elements j, j+L, j+2L, ...

        Every step is elementwise over the lanes, so the C compiler vectorizes any combine region
        (NaN-aware max, argmax with its index tie-break, ...) without reassociating anything itself.
        Triton's reductions assume an associative, commutative combine; this grouping relies on it.
        `ordered` (an ORDERED_REDUCTIONS entry) starts the lanes from its identity and combines with its op.
        """
        lanes = len(partials) and partials[0].size
        if ordered:
            op, identity = ordered
            p, dtype = partials[0], partials[0].dtype
            start = lambda j: [n.BufWrite(p, j[0], n.Binary(op, n.Const(identity, dtype), args[0].gen(at(j[0])), dtype))]  # noqa: E731
            step = lambda j, value: self.emit(n.BufWrite(p, j[0], n.Binary(op, n.BufRead(p, j[0]), value, dtype)))  # noqa: E731
        else:
            start = lambda j: [n.BufWrite(p, j[0], a.gen(at(j[0]))) for p, a in zip(partials, args)]  # noqa: E731
            step = lambda j, *values: self.combine_into(region, env, partials, j[0], list(values))  # noqa: E731
        self.loop_nest((lanes,), lambda j: [self.emit(s) for s in start(j)])
        r0 = n.Var(self.fresh("r0"), I32)
        outer_stmts, loop_body = self.stmts, []
        self.stmts = loop_body
        self.loop_nest((lanes,), lambda j: step(j, *[a.gen(at(n.Binary("add", r0, j[0], I32))) for a in args]))
        self.stmts = outer_stmts
        self.emit(n.For(r0, c0(lanes), c0(R - R % lanes), c0(lanes), loop_body))
        # Fold the lanes down to one, still in vector steps: to 16 lanes (lane j takes j + 16g), then
        # halving (lane j takes j + width), so the last steps are a short tree, not a serial chain.
        steps = [(VECTOR_LANES, group * VECTOR_LANES) for group in range(1, lanes // VECTOR_LANES)]
        fold = _register_fold(region, partials) if lanes == VECTOR_LANES else None
        width = 0 if fold else min(lanes, VECTOR_LANES) // 2
        while width:
            steps.append((width, width))
            width //= 2
        for width, shift in steps:
            self.loop_nest((width,), lambda j, shift=shift: step(
                j, *[n.BufRead(p, n.Binary("add", j[0], c0(shift), I32)) for p in partials]))
        if fold:
            self.emit(n.Intrinsic(fold, (partials[0],)))

    def op_scan(self, op: Op, args: list, env: dict) -> list:
        axis = int(op.attrs["axis"])
        reverse = bool(op.attrs.get("reverse", False))
        shape = args[0].shape
        R = shape[axis]
        region = op.regions[0]
        dtypes = [a.dtype for a in args]
        self.consumed(*args)
        if (dtypes == ["f32"] and axis == len(shape) - 1 and not reverse and R >= 2 * VECTOR_LANES
                and single_combine(region) == "arith.addf"):
            return [self.prefix_sums(args[0], op.results[0][1])]
        outs = [self.new_buffer(d, numel(shape), "scan") for d in dtypes]
        rest = shape[:axis] + shape[axis + 1:]

        def body(rest_idx):
            def at(r):
                return rest_idx[:axis] + (r,) + rest_idx[axis:]
            first = c0(R - 1 if reverse else 0)
            accs = [n.Var(self.fresh("acc"), d) for d in dtypes]
            for acc, a, o in zip(accs, args, outs):
                self.emit(n.Declare(acc, a.gen(at(first))))
                self.emit(n.BufWrite(o, linear_index(at(first), shape), acc))
            r = n.Var(self.fresh("r"), I32)
            pos = n.Binary("sub", c0(R - 1), r, I32) if reverse else r
            outer_stmts, loop_body = self.stmts, []
            self.stmts = loop_body
            new = self.combine(region, env, list(accs) + [a.gen(at(pos)) for a in args])
            for acc, v in zip(accs, new):
                self.emit(n.Assign(acc, v))
            for acc, o in zip(accs, outs):
                self.emit(n.BufWrite(o, linear_index(at(pos), shape), acc))
            self.stmts = outer_stmts
            self.emit(n.For(r, c0(1), c0(R), c0(1), loop_body))
        if rest:
            self.loop_nest(rest, body, vectorize=False)
        else:
            body(())
        results = []
        for (_, ty), o in zip(op.results, outs):
            tv = TVal(ty, None)
            self.read_buffer(tv, o)
            results.append(tv)
        return results

    def op_dot(self, op: Op, args: list, env: dict) -> TVal:
        a, b, c = args
        ty = op.results[0][1]
        acc_t = "f32" if is_float(ty.elem) else "i32"
        if ty.elem in ("f64", "i64"):
            acc_t = ty.elem
        self.consumed(a, b, c)
        batch = a.shape[:-2]
        M, K = a.shape[-2:]
        N = b.shape[-1]
        # bf16 x bf16 stays bf16 (AMX / vdpbf16ps; the micro-kernel packs B into `scratch`); the rest computes in acc_t.
        paired = a.dtype == b.dtype == "bf16" and acc_t == "f32" and K % 2 == 0
        in_t = "bf16" if paired else acc_t
        scratch = (self.new_buffer("bf16", K * N, "dot_pairs"),) if paired else ()
        in_place = c.buffer is not None and c.dtype == acc_t and self.uses.get(op.operands[2], 0) == 1
        A = self.dot_operand(a, in_t, "dot_a", c, in_place, batch)
        # bf16 B as it lies, N x K, goes to the product's `_nt` form, whose packing into pairs is itself a
        # transpose of 32-bit words (no pass that turns it into K x N first)
        Bt = self.lying_transposed(b, in_t, c, in_place) if paired and not batch else None
        B = self.dot_operand(b, in_t, "dot_b", c, in_place, batch) if Bt is None else Bt
        zero = not in_place and kernel_for(acc_t, paired) == "tb_dot_f32" and is_zero(c)
        if in_place:
            # The accumulator has no other use (typically a loop-carried tile): accumulate in place.
            D = c.buffer
        elif zero:  # the kernel starts its accumulators at zero: no pass that zeroes the result first
            D = self.new_buffer(acc_t, ty.numel, "dot")
        else:
            D = self.new_buffer(acc_t, ty.numel, "dot")
            self.loop_nest(ty.shape, lambda idx: self.emit(
                n.BufWrite(D, linear_index(idx, ty.shape), n.Cast(c.gen(idx), acc_t))))

        kernel = kernel_for(acc_t, paired) + ("_nt" if Bt is not None else "") + ("_set" if zero else "")
        for i in range(numel(batch)):
            self.emit(n.Intrinsic(kernel, (c0(M), c0(N), c0(K), buffer_from(A, i * M * K), buffer_from(B, i * K * N),
                                           buffer_from(D, i * M * N), *scratch)))
        out = TVal(TType(ty.shape, acc_t), None)
        self.read_buffer(out, D)
        if acc_t != ty.elem:
            return derived(ty, lambda idx: n.Cast(out.gen(idx), ty.elem), out)
        return out

    def dot_operand(self, src: TVal, dtype: str, stem: str, acc: TVal, in_place: bool, batch: tuple) -> n.Buffer:
        """A buffer holding `src` row-major as `dtype`. A tile already held that way (q in attention,
        the probabilities p) is read where it is, unless the product overwrites it in place; an fp32
        tile whose memory lies transposed is taken as it lies and transposed in cache
        (`lying_transposed`); anything else (loads, transposes, casts) is copied into a new buffer."""
        if (src.buffer is not None and src.dtype == dtype and src.transpose_of is None
                and not (in_place and src.buffer is acc.buffer)):
            return src.buffer
        buf = self.new_buffer(dtype, src.type.numel, stem)
        lying = self.lying_transposed(src, dtype, acc, in_place) if dtype in TRANSPOSES and not batch else None
        if lying is not None:
            rows, cols = src.shape
            self.emit(n.Intrinsic(TRANSPOSES[dtype], (c0(cols), c0(rows), lying, buf)))
        else:
            self.fill_operand(src, buf, dtype)
        return buf

    def lying_transposed(self, src: TVal, dtype: str, acc: TVal, in_place: bool) -> n.Buffer | None:
        """A buffer holding the 2-D operand `src` (R x C) as its transpose, C x R row-major, where that
        is how its memory lies: `tl.trans` of a tile (attention's keys; a tile already held row-major
        is used where it is) or a load whose addresses run down its columns (a linear layer's weight,
        a transposed gradient). Copied as it lies, it is read and written unit-stride, and a transpose
        in cache through vector registers (`tb_transpose32`) replaces a copy that writes one element at
        a time down the operand's columns. None for any other operand."""
        rows, cols = src.shape
        if src.transpose_of is not None:
            source, order = src.transpose_of
            if list(order) != [1, 0]:
                return None
            if (source.buffer is not None and source.dtype == dtype
                    and not (in_place and source.buffer is acc.buffer)):
                return source.buffer
            gen = source.gen
        elif src.materialized or self.read_order(src.gen, src.shape) is None:
            return None
        else:
            gen = lambda idx: src.gen((idx[1], idx[0]))  # noqa: E731 -- the element of src^T at idx
        buf = self.new_buffer(dtype, rows * cols, "dot_lying")
        shape = (cols, rows)
        self.loop_nest(shape, lambda idx: self.emit(n.BufWrite(buf, linear_index(idx, shape), n.Cast(gen(idx), dtype))))
        return buf

    def fill_operand(self, src: TVal, buf: n.Buffer, dtype: str) -> None:
        """Copy a dot operand into a row-major buffer. A transposed tile (`tl.trans(k)` in attention)
        is copied in its source's order, so the reads stay contiguous and only the writes stride."""
        shape = src.shape
        if src.transpose_of is not None:
            source, order = src.transpose_of

            def write(sidx):
                idx = tuple(sidx[o] for o in order)  # the element of `src` that source[sidx] becomes
                self.emit(n.BufWrite(buf, linear_index(idx, shape), n.Cast(source.gen(sidx), dtype)))
            self.loop_nest(source.shape, write)
            return
        self.loop_nest(shape, lambda idx: self.emit(n.BufWrite(buf, linear_index(idx, shape), n.Cast(src.gen(idx), dtype))),
                       order=self.read_order(src.gen, shape))

    def prefix_sums(self, src: TVal, ty: TType) -> TVal:
        """fp32 cumsum along rows: the header's vector scan (log-step sums inside a vector, a running
        carry between vectors) instead of one dependent add per element. Reassociates like a tree."""
        shape = src.shape
        rows, R = numel(shape[:-1]), shape[-1]
        values, out = self.new_buffer("f32", numel(shape), "scan_in"), self.new_buffer("f32", numel(shape), "scan")
        self.loop_nest(shape, lambda idx: self.emit(n.BufWrite(values, linear_index(idx, shape), src.gen(idx))))
        self.emit(n.Intrinsic("tb_cumsum_rows_f32", (values, out, c0(rows), c0(R))))
        tv = TVal(ty, None)
        self.read_buffer(tv, out)
        return tv

    def op_histogram(self, op: Op, args: list, env: dict) -> TVal:
        src = args[0]
        mask = args[1] if len(args) > 1 else None
        ty = op.results[0][1]
        bins = ty.numel
        out = self.new_buffer(ty.elem, bins, "hist")
        self.loop_nest(ty.shape, lambda idx: self.emit(n.BufWrite(out, idx[0], n.Const(0, ty.elem))))

        def body(idx):
            v = n.Var(self.fresh("h"), src.dtype)
            self.emit(n.Declare(v, src.gen(idx)))
            ok = n.Binary("and", n.Binary("ge", v, n.Const(0, src.dtype), "i1"),
                          n.Binary("lt", v, n.Const(bins, src.dtype), "i1"), "i1")
            if mask is not None:
                ok = n.Binary("and", ok, mask.gen(idx), "i1")
            pos = n.Cast(v, I32)
            self.emit(n.If(ok, [n.BufWrite(out, pos, n.Binary("add", n.BufRead(out, pos), n.Const(1, ty.elem), ty.elem))]))
        self.loop_nest(src.shape, body, vectorize=False)
        tv = TVal(ty, None)
        self.read_buffer(tv, out)
        return tv


def kernel_for(acc_t: str, paired: bool) -> str:
    """The C tile-product function for an accumulator type (bf16 pairs have their own)."""
    return "tb_dot_bf16" if paired else DOT_PRODUCTS[acc_t]


def is_zero(value: TVal) -> bool:
    """Whether a tile is the constant zero (a splat of 0), as `tl.dot`'s default accumulator is."""
    element = value.gen(tuple(c0() for _ in value.shape))
    return isinstance(element, n.Const) and element.value == 0 and not value.loads


# Combine regions whose last 16 lanes fold in registers (tilebridge.h's tb_fold16_*): one fp32 operand, one op.
REGISTER_FOLDS = {"arith.addf": "tb_fold16_addf", "arith.maxnumf": "tb_fold16_maxnumf", "arith.minnumf": "tb_fold16_minnumf"}


def _register_fold(region: Block, partials: list) -> str | None:
    """The runtime routine that folds 16 fp32 lanes of this combine region, or None for the generic steps."""
    if len(partials) != 1 or partials[0].dtype != "f32" or len(region.ops) != 2:
        return None
    op, term = region.ops
    args = [name for name, _ in region.args]
    if term.operands != [op.results[0][0]] or sorted(op.operands) != sorted(args):
        return None
    return REGISTER_FOLDS.get(op.name)
