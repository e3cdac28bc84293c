"""TTIR → loop IR.

Every tensor value is a *lazy* generator: a function from a tuple of index expressions to a scalar IR
expression. Elementwise ops, broadcasts, splats, ranges, transposes and pointer arithmetic compose
generators, so a chain of them costs nothing until a consumer (a store, a reduction, a dot, a loop
carry) evaluates it inside its own loop nest: that is the fusion. A value is *materialized* into a
program-local buffer only when it is worth it or needed — used several times and not cheap, a load
that a later side effect could reorder, the operand of a dot, a loop-carried tile.

A store forces copies of the lazy values it could change. Which argument a pointer points into is
tracked (`TVal.roots`), so `lower_module` also lowers the kernel for pointer arguments whose memory is
disjoint, where a store copies only what was read through its own argument, and keeps that second form
where it differs; the launcher's entry chooses between the two at each launch.
"""
from __future__ import annotations

import dataclasses
import linecache
import re

from tilebridge.frontends.triton import optable
from tilebridge.frontends.triton.lower_compute import ComputeLowering
from tilebridge.frontends.triton.lower_control import ControlLowering
from tilebridge.frontends.triton.tiles import (
    ANYWHERE,
    EXPENSIVE_COST,
    I32,
    LoweringError,
    TVal,
    c0,
    derived,
    linear_index,
    parse_constant,
)
from tilebridge.frontends.triton.ttir import Block, Module, Op, TType, parse_ttir
from tilebridge.ir import nodes as n
from tilebridge.ir import passes
from tilebridge.ir.passes import optimize
from tilebridge.ir.types import is_float, is_pointer, pointee


class Lowerer(ComputeLowering, ControlLowering):
    """Lowers one TTIR module; the op handlers are tabled in HANDLERS below."""

    def __init__(self, module: Module, options=None, disjoint: bool = False, prefix: str = "") -> None:
        self.module = module
        self.options = options
        # Lower for pointer arguments whose memory does not overlap (`lower_module` keeps this form
        # beside the general one): a store then keeps lazy the values read only through other arguments.
        self.disjoint = disjoint
        self.prefix = prefix
        self.buffers: list[n.Buffer] = []
        self.stmts: list = []
        self.counter = 0
        self.pending: list[TVal] = []  # lazy loads not yet evaluated
        self.uses: dict[str, int] = {}
        self.nested_uses: set[str] = set()
        self.remaining: dict[str, int] = {}  # uses of each value not lowered yet
        self.if_storages: dict[int, dict] = {}  # scf.if op -> {result index: carry storage it writes into}
        self.values: dict[str, TVal] = {}  # every settled value by name, to see which lazy ones are still live
        self.rereads: list[TVal] = []  # multi-use values left lazy: re-read at each use until a write
        self.op: Op | None = None
        self.pids = tuple(n.Var(f"tb_pid_{a}", I32) for a in "xyz")
        self.nums = tuple(n.Var(f"tb_num_{a}", I32) for a in "xyz")

    # ---- naming and emission ----
    def fresh(self, stem: str) -> str:
        self.counter += 1
        stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)
        return f"{self.prefix}{'v' if not stem or stem[0].isdigit() else ''}{stem}_{self.counter}"

    def emit(self, stmt) -> None:
        self.stmts.append(stmt)

    def error(self, what: str) -> LoweringError:
        where = self.module.source_line(self.op.loc) if self.op is not None else None
        if where:
            source = linecache.getline(where[0], where[1]).strip()
            return LoweringError(f"{what} is not supported by tilebridge's CPU backend\n"
                                 f"  at {where[0]}:{where[1]}: {source}")
        return LoweringError(f"{what} is not supported by tilebridge's CPU backend")

    # ---- materialization ----
    def new_buffer(self, dtype: str, size: int, stem: str = "t") -> n.Buffer:
        buf = n.Buffer(self.fresh(stem), dtype, size)
        self.buffers.append(buf)
        return buf

    def loop_nest(self, shape: tuple, body_fn, vectorize: bool = True, order: tuple | None = None) -> None:
        """Emit loops over `shape` (innermost vectorizable), nested in `order` (outermost first; by
        default the last dim innermost); dims of size 1 get no loop. A loop nest in another order
        writes its tile with a stride, which `omp simd` would turn into scatters: it stays scalar."""
        idx = tuple(c0() if d == 1 else n.Var(self.fresh("i"), I32) for d in shape)
        outer = self.stmts
        body: list = []
        self.stmts = body
        body_fn(idx)
        self.stmts = outer
        inner_dims = [k for k in (order or range(len(shape))) if shape[k] != 1]
        for k in reversed(inner_dims):
            body = [n.For(idx[k], c0(), c0(shape[k]), c0(1), body, vectorize=vectorize and k == inner_dims[-1] and order is None)]
        self.stmts.extend(body)

    def read_order(self, gen, shape: tuple) -> tuple | None:
        """The loop order that reads a tile's memory contiguously where the default order would not:
        a tile loaded along its next-to-last dim (`ptr + k[:, None] + n[None, :] * stride`, the
        transposed weight of a linear layer) is copied with that dim innermost, so the reads are
        unit-stride and only the writes into the tile stride. None keeps the default order."""
        if len(shape) < 2 or shape[-1] == 1 or shape[-2] == 1:
            return None
        probe = tuple(n.Var(f"tb_probe{k}", I32) for k in range(len(shape)))
        reads = [e for e in passes.subexpressions(gen(probe)) if isinstance(e, n.MemRead)]
        if not reads or any(passes.unit_stride(r.pointer, probe[-1]) for r in reads) \
                or not all(passes.unit_stride(r.pointer, probe[-2]) for r in reads):
            return None
        return (*range(len(shape) - 2), len(shape) - 1, len(shape) - 2)

    def read_buffer(self, tv: TVal, buf: n.Buffer) -> None:
        shape = tv.shape
        tv.gen = lambda idx: n.BufRead(buf, linear_index(idx, shape))
        tv.cost, tv.loads, tv.reads, tv.materialized = 0, frozenset(), frozenset([buf.name]), True
        tv.buffer = buf if buf.size == tv.type.numel else None

    def materialize(self, tv: TVal, stem: str = "t") -> TVal:
        if tv.materialized:
            return tv
        self.pending = [p for p in self.pending if p is not tv]
        if not tv.shape:
            value = tv.scalar()
            if isinstance(value, (n.Const, n.Var)):
                tv.materialized = True
                return tv
            var = n.Var(self.fresh(stem), tv.dtype)
            self.emit(n.Declare(var, value))
            tv.gen, tv.cost, tv.loads, tv.reads, tv.materialized = (lambda idx: var), 0, frozenset(), frozenset(), True
            return tv
        buf, tv.fill = tv.fill or self.new_buffer(tv.dtype, tv.type.numel, stem), None
        gen, shape = tv.gen, tv.shape
        self.loop_nest(shape, lambda idx: self.emit(n.BufWrite(buf, linear_index(idx, shape), gen(idx))),
                       order=self.read_order(gen, shape))
        self.read_buffer(tv, buf)
        return tv

    def flush(self, keep: frozenset = frozenset(), carried: frozenset = frozenset(),
              through: frozenset = frozenset()) -> None:
        """Evaluate every pending lazy load (before a side effect could change what it reads), and
        store every multi-use value left lazy that is still to be read (`rereads`).

        `keep`: loads the coming side effect reads itself, element by element. `carried`: values
        and loads only a loop's carries read next, which write tile storage, never memory.
        `through`: the pointer arguments a coming store writes into, where known; in the disjoint
        form, values read only through other arguments stay lazy."""
        untouched = []
        for tv in list(self.pending):
            if tv in keep or not self.live(tv):  # a load whose readers were all evaluated is dead
                continue
            if self.untouched(tv, through):
                untouched.append(tv)
            else:
                self.materialize(tv, "ld")
        self.pending = [p for p in self.pending if p in keep] + untouched
        for tv in self.rereads:
            if tv not in carried and not tv.materialized and self.needed(tv) and not self.untouched(tv, through):
                self.materialize(tv, "rd")
        self.rereads = [tv for tv in self.rereads if not tv.materialized and self.needed(tv)]

    def needed(self, tv: TVal) -> bool:
        """Whether a value not yet used up is built on the lazy value `tv` (so would read it again)."""
        return any(self.remaining.get(name, 0) > 0 and not value.materialized and tv in value.loads
                   for name, value in self.values.items())

    def untouched(self, tv: TVal, through: frozenset) -> bool:
        """In the disjoint form, whether a store through the arguments `through` leaves every load
        of `tv` unchanged: each load reads through known arguments, none of them written."""
        if not self.disjoint or not through or ANYWHERE <= through:
            return False
        return all(load.roots and not ANYWHERE <= load.roots and not load.roots & through for load in tv.loads)

    def live(self, tv: TVal) -> bool:
        """Whether a value not yet used up may still read what `tv` reads (conservative: any shared load)."""
        return any(self.remaining.get(name, 0) > 0 and not value.materialized and value.loads & tv.loads
                   for name, value in self.values.items())

    def consumed(self, *tvs: TVal) -> None:
        loads = frozenset().union(*(t.loads for t in tvs))
        self.pending = [p for p in self.pending if p not in loads]

    # ---- driving ----
    def count_uses(self, block: Block, depth: int, defined: dict) -> None:
        for op in block.ops:
            for name in op.operands:
                self.uses[name] = self.uses.get(name, 0) + 1
                if defined.get(name, depth) != depth:
                    self.nested_uses.add(name)
            for name, _ in op.results:
                defined[name] = depth
            for region in op.regions:
                for name, _ in region.args:
                    defined[name] = depth + 1
                self.count_uses(region, depth + 1, defined)

    def lower_kernel(self) -> n.Kernel:
        kernels = [f for f in self.module.functions.values() if f.public]
        if len(kernels) != 1:
            raise LoweringError(f"expected one public kernel function in the TTIR, found {len(kernels)}")
        fn = kernels[0]
        for f in self.module.functions.values():
            self.count_uses(f.body, 0, {name: 0 for name, _ in f.args})
        params, env = [], {}
        for name, ty in fn.args:
            if ty.shape:
                raise LoweringError(f"tensor-typed kernel argument {name}")
            var = n.Var("a_" + re.sub(r"[^A-Za-z0-9_]", "_", name[1:]), ty.elem)
            params.append(var)
            roots = frozenset([var.name]) if is_pointer(ty.elem) else frozenset()
            env[name] = TVal(ty, lambda idx, v=var: v, materialized=True, roots=roots)
        self.lower_body(fn.body, env, [])
        return n.Kernel(fn.name, params, self.buffers, self.stmts, self.pids, self.nums)

    def lower_block(self, block: Block, env: dict) -> list | None:
        """Lower the ops of a block; return the operands of its terminator (yield/return/condition)."""
        for index, op in enumerate(block.ops):
            self.op = op
            if op.name in TERMINATORS:
                return op
            handler = HANDLERS.get(op.name)
            if handler is None:
                if op.name in optable.BINARY:
                    handler = Lowerer.op_binary
                elif op.name in optable.UNARY:
                    handler = Lowerer.op_unary
                elif op.name in optable.CASTS:
                    handler = Lowerer.op_cast
                elif op.name in optable.BITCASTS:
                    handler = Lowerer.op_bitcast
                else:
                    raise self.error(f"the TTIR operation '{op.name}'")
            args = [env[name] for name in op.operands]
            for name in op.operands:
                self.remaining[name] = self.remaining.get(name, 0) - 1
            results = handler(self, op, args, env)
            if results is None:
                continue
            if isinstance(results, TVal):
                results = [results]
            following = block.ops[index + 1:]
            for (name, _), tv in zip(op.results, results):
                env[name] = self.settle(name, tv, following)
        return None

    def lower_body(self, block: Block, env: dict, result_types: list) -> list:
        """Lower a function body; return the values of its `tt.return`.

        Structured bodies are one block. Early returns make several blocks joined by `cf.br` /
        `cf.cond_br`: each block becomes a label, block arguments and return values become storage,
        and branches become gotos.
        """
        if not block.successors:
            term = self.lower_block(block, env)
            return [env[v] for v in term.operands] if term is not None else []
        blocks = [block] + block.successors
        labels = {b.label: n.Label(self.fresh(b.label)) for b in blocks}
        end = n.Label(self.fresh("end"))
        results = [self.storage_for(ty, "ret") for ty in result_types]
        arguments = {b.label: [self.storage_for(ty, "barg") for _, ty in b.args] for b in blocks[1:]}
        for b in blocks[1:]:
            for (name, ty), storage in zip(b.args, arguments[b.label]):
                env[name] = self.storage_value(ty, storage)
        for b in blocks:
            self.emit(labels[b.label])
            term = self.lower_block(b, env)
            self.flush()
            if term is None or term.name == "tt.return":
                self.write_all(results, [env[v] for v in (term.operands if term is not None else [])])
                self.emit(n.Goto(end.name))
                continue
            branches = []
            for target, values in term.attrs["targets"]:
                outer, body = self.stmts, []
                self.stmts = body
                self.write_all(arguments[target], [env[v] for v in values])
                self.emit(n.Goto(labels[target].name))
                self.stmts = outer
                branches.append(body)
            if term.attrs["condition"]:
                self.emit(n.If(env[term.operands[0]].scalar(), branches[0], branches[1]))
            else:
                self.stmts.extend(branches[0])
        self.emit(end)
        return [self.storage_value(ty, s) for ty, s in zip(result_types, results)]

    def settle(self, name: str, tv: TVal, following: list = ()) -> TVal:
        """Decide whether a new value stays lazy."""
        uses = self.uses.get(name, 0)
        self.remaining[name] = uses
        self.values[name] = tv
        if tv.materialized:
            return tv
        if not tv.shape:
            return self.materialize(tv, name[1:])
        if uses > 1 and tv.loads and tv.cost <= EXPENSIVE_COST and used_in_line(name, uses, following):
            # Cheap to read again, and nothing may write memory before its last use unless a flush
            # stores it first: each use reads the source again (from cache) instead of a pass that
            # copies the tile into a buffer. Counted among its own loads, so that every value built
            # on it carries it (`needed`), reading through what its loads read.
            tv.roots = frozenset().union(*(load.roots or ANYWHERE for load in tv.loads))
            tv.loads = tv.loads | {tv}
            self.rereads.append(tv)
            return tv
        if uses > 1 and (tv.loads or tv.cost > EXPENSIVE_COST):
            if feeds_reduction(name, following):
                # The reduction reads every element anyway: it stores them as it goes (softmax's
                # exp pass and sum become one loop) instead of a separate pass filling the tile first.
                tv.fill = self.new_buffer(tv.dtype, tv.type.numel, name[1:])
                return tv
            return self.materialize(tv, name[1:])
        if name in self.nested_uses and (tv.loads or tv.cost > 2):
            return self.materialize(tv, name[1:])
        return tv

    # ---- elementwise ----
    def op_binary(self, op: Op, args: list, env: dict) -> TVal:
        a, b = args
        ir_op, ty = optable.BINARY[op.name], op.results[0][1]
        return derived(ty, lambda idx: n.Binary(ir_op, a.gen(idx), b.gen(idx), ty.elem), a, b, cost=index_cost(a, b))

    def op_unary(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        ir_op, ty = optable.UNARY[op.name], op.results[0][1]
        if ir_op in ("isnan", "isinf", "isfinite"):
            return derived(ty, lambda idx: n.Unary(ir_op, a.gen(idx), "i1"), a)
        cost = 8 if ir_op not in ("neg", "abs", "iabs", "floor", "ceil", "trunc") else 1
        return derived(ty, lambda idx: n.Unary(ir_op, a.gen(idx), ty.elem), a, cost=cost)

    def op_cast(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        ty = op.results[0][1]
        mode = optable.CASTS[op.name]
        if op.attrs.get("rounding") == "rtz":
            mode = "rtz"
        return derived(ty, lambda idx: n.Cast(a.gen(idx), ty.elem, mode), a)

    def op_bitcast(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        ty = op.results[0][1]
        return derived(ty, lambda idx: n.Bitcast(a.gen(idx), ty.elem), a)

    def op_cmp(self, op: Op, args: list, env: dict) -> TVal:
        a, b = args
        table = optable.CMPI if op.name == "arith.cmpi" else optable.CMPF
        pred = op.keywords[0] if op.keywords else op.attrs.get("predicate")
        ir_op = table.get(pred)
        if ir_op is None:
            raise self.error(f"comparison predicate {pred!r}")
        ty = op.results[0][1]
        return derived(ty, lambda idx: n.Binary(ir_op, a.gen(idx), b.gen(idx), "i1"), a, b, cost=index_cost(a, b))

    def op_select(self, op: Op, args: list, env: dict) -> TVal:
        c, a, b = args
        ty = op.results[0][1]
        if not c.shape:
            return derived(ty, lambda idx: n.Select(c.scalar(), a.gen(idx), b.gen(idx), ty.elem), c, a, b)
        return derived(ty, lambda idx: n.Select(c.gen(idx), a.gen(idx), b.gen(idx), ty.elem), c, a, b)

    def op_fma(self, op: Op, args: list, env: dict) -> TVal:
        a, b, c = args
        ty = op.results[0][1]
        return derived(ty, lambda idx: n.Call("fma", (a.gen(idx), b.gen(idx), c.gen(idx)), ty.elem), a, b, c)

    def op_clampf(self, op: Op, args: list, env: dict) -> TVal:
        x, lo, hi = args
        ty = op.results[0][1]
        nan = op.attrs.get("propagateNan", "none")
        mx, mn = ("fmaximum", "fminimum") if str(nan).lower() in ("all", "1", "true") else ("fmax", "fmin")
        return derived(ty, lambda idx: n.Binary(mn, n.Binary(mx, x.gen(idx), lo.gen(idx), ty.elem), hi.gen(idx),
                                                ty.elem), x, lo, hi)

    def op_extern(self, op: Op, args: list, env: dict) -> TVal:
        symbol = op.attrs.get("symbol", "")
        entry = optable.libdevice_entry(symbol)
        if entry is None:
            raise self.error(f"the libdevice function {symbol!r}")
        kind, name = entry
        ty = op.results[0][1]
        elem = ty.elem
        if kind == "u":
            return derived(ty, lambda idx: n.Unary(name, args[0].gen(idx), elem), *args, cost=8)
        if kind in ("b", "ib"):
            return derived(ty, lambda idx: n.Binary(name, args[0].gen(idx), args[1].gen(idx), elem), *args, cost=4)
        if kind == "p":
            return derived(ty, lambda idx: n.Cast(n.Unary(name, args[0].gen(idx), "i1"), elem), *args)
        if kind == "i":
            return derived(ty, lambda idx: n.Cast(n.Unary(name, args[0].gen(idx), args[0].dtype), elem), *args)
        if kind == "bitcast":
            return derived(ty, lambda idx: n.Bitcast(args[0].gen(idx), elem), *args)
        if kind == "rcp":
            return derived(ty, lambda idx: n.Binary("fdiv", n.Const(1.0, elem), args[0].gen(idx), elem), *args)
        if kind == "c":
            return derived(ty, lambda idx: n.Call(name, tuple(a.gen(idx) for a in args), elem), *args, cost=4)
        if kind == "cast":
            rounding = name.split(":")[1]
            unsigned = "2u" in name
            src = args[0]

            def gen(idx):
                value = src.gen(idx)
                if rounding == "rn":
                    value = n.Unary("rint", value, src.dtype)
                return n.Cast(value, elem, "to_unsigned" if unsigned else "")
            return derived(ty, gen, src)
        raise self.error(f"the libdevice function {symbol!r}")

    # ---- constants, ids, ranges ----
    def op_constant(self, op: Op, args: list, env: dict) -> TVal:
        ty = op.results[0][1]
        try:
            value = parse_constant(op.attrs["value"], ty.elem)
        except ValueError as e:
            raise self.error(f"the constant {op.attrs['value']!r} ({e})") from None
        const = n.Const(value, ty.elem)
        return TVal(ty, lambda idx: const, materialized=True)

    def op_poison(self, op: Op, args: list, env: dict) -> TVal:
        ty = op.results[0][1]
        const = n.Const(0 if not is_float(ty.elem) else 0.0, ty.elem)
        return TVal(ty, lambda idx: const, materialized=True)

    def op_program_id(self, op: Op, args: list, env: dict) -> TVal:
        axis = op.keywords[0] if op.keywords else "x"
        table = self.pids if op.name == "tt.get_program_id" else self.nums
        var = table["xyz".index(axis)] if axis in "xyz" else table[int(op.attrs.get("axis", 0))]
        return TVal(op.results[0][1], lambda idx: var, materialized=True)

    def op_make_range(self, op: Op, args: list, env: dict) -> TVal:
        start = int(op.attrs.get("start", 0))
        ty = op.results[0][1]
        return TVal(ty, lambda idx: idx[0] if start == 0 else n.Binary("add", idx[0], c0(start), I32), cost=0)

    # ---- shape ops ----
    def op_splat(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        return derived(op.results[0][1], lambda idx: a.scalar(), a, cost=0)

    def op_broadcast(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        src, dst = a.shape, op.results[0][1].shape
        if len(src) != len(dst):
            raise self.error("a broadcast that changes rank")
        return derived(op.results[0][1], lambda idx: a.gen(tuple(
            c0() if src[k] == 1 and dst[k] != 1 else idx[k] for k in range(len(dst)))), a, cost=0)

    def op_expand_dims(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        axis = int(op.attrs["axis"])
        return derived(op.results[0][1], lambda idx: a.gen(idx[:axis] + idx[axis + 1:]), a, cost=0)

    def op_reshape(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        ty = op.results[0][1]
        src = tuple(d for d in a.shape if d != 1)
        if src == tuple(d for d in ty.shape if d != 1):
            src_positions = [k for k, d in enumerate(a.shape) if d != 1]
            dst_positions = [k for k, d in enumerate(ty.shape) if d != 1]

            def gen(idx):
                full = [c0()] * len(a.shape)
                for s, d in zip(src_positions, dst_positions):
                    full[s] = idx[d]
                return a.gen(tuple(full))
            return derived(ty, gen, a, cost=0)
        self.materialize(a)
        shape = ty.shape
        src_shape = a.shape

        def gen_flat(idx):
            flat = linear_index(idx, shape)
            full, rem = [], flat
            for k in range(len(src_shape)):
                stride = 1
                for d in src_shape[k + 1:]:
                    stride *= d
                full.append(n.Binary("div", rem, c0(stride), I32) if stride != 1 else rem)
                if stride != 1:
                    rem = n.Binary("rem", rem, c0(stride), I32)
            return a.gen(tuple(full))
        return derived(ty, gen_flat, a, cost=0)

    def op_trans(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        order = op.attrs.get("order") or list(reversed(range(len(a.shape))))

        def gen(idx):
            src = [None] * len(order)
            for k, o in enumerate(order):
                src[o] = idx[k]
            return a.gen(tuple(src))
        out = derived(op.results[0][1], gen, a, cost=0)
        out.transpose_of = (a, list(order))
        return out

    def op_join(self, op: Op, args: list, env: dict) -> TVal:
        a, b = args

        def gen(idx):
            last = idx[-1]
            if isinstance(last, n.Const):
                return (a if last.value == 0 else b).gen(idx[:-1])
            return n.Select(n.Binary("eq", last, c0(), "i1"), a.gen(idx[:-1]), b.gen(idx[:-1]), a.dtype)
        return derived(op.results[0][1], gen, a, b, cost=0)

    def op_unsplat(self, op: Op, args: list, env: dict) -> TVal:
        (a,) = args
        return derived(op.results[0][1], lambda idx: a.gen(tuple(c0() for _ in a.shape)), a, cost=0)

    def op_split(self, op: Op, args: list, env: dict) -> list:
        (a,) = args
        return [derived(ty, (lambda idx, k=k: a.gen(idx + (c0(k),))), a, cost=0)
                for k, (_, ty) in enumerate(op.results)]

    def op_cat(self, op: Op, args: list, env: dict) -> TVal:
        a, b = args
        first = a.shape[0]
        ty = op.results[0][1]
        self.materialize(a)
        self.materialize(b)
        return derived(ty, lambda idx: n.Select(
            n.Binary("lt", idx[0], c0(first), "i1"), a.gen(idx),
            b.gen((n.Binary("sub", idx[0], c0(first), I32),) + idx[1:]), ty.elem), a, b, cost=0)

    def op_gather(self, op: Op, args: list, env: dict) -> TVal:
        src, index = args
        axis = int(op.attrs.get("axis", 0))
        self.materialize(src)
        ty = op.results[0][1]
        return derived(ty, lambda idx: src.gen(idx[:axis] + (n.Cast(index.gen(idx), I32),) + idx[axis + 1:]),
                       src, index)

    # ---- memory ----
    def op_addptr(self, op: Op, args: list, env: dict) -> TVal:
        p, off = args
        ty = op.results[0][1]
        return derived(ty, lambda idx: n.Binary("ptradd", p.gen(idx), off.gen(idx), ty.elem), p, off, cost=0)

    def op_load(self, op: Op, args: list, env: dict) -> TVal:
        ptr = args[0]
        mask = args[1] if len(args) > 1 else None
        other = args[2] if len(args) > 2 else None
        ty = op.results[0][1]
        if is_pointer(ptr.dtype) and pointee(ptr.dtype).startswith("ptr<tensor") or "tensor" in ptr.dtype:
            raise self.error("a load through a block pointer that was not rewritten")
        elem = ty.elem

        def gen(idx):
            value = n.MemRead(ptr.gen(idx), elem)
            if mask is None:
                return value
            fallback = other.gen(idx) if other is not None else n.Const(0.0 if is_float(elem) else 0, elem)
            return n.Select(mask.gen(idx), value, fallback, elem)
        sources = [s for s in (ptr, mask, other) if s is not None]
        tv = derived(ty, gen, *sources, cost=1)
        tv.loads = tv.loads | {tv}
        tv.roots = ANYWHERE if is_pointer(elem) or not ptr.roots else ptr.roots  # a loaded pointer may point anywhere
        if ty.shape:
            self.pending.append(tv)
        return tv

    def op_store(self, op: Op, args: list, env: dict) -> None:
        ptr, value = args[0], args[1]
        mask = args[2] if len(args) > 2 else None
        keep = frozenset().union(*(a.loads for a in args))
        self.flush(keep, through=ptr.roots)
        store_type = pointee(ptr.dtype)

        def body(idx):
            v = value.gen(idx)
            if v.dtype != store_type:
                v = n.Cast(v, store_type)
            write = n.MemWrite(ptr.gen(idx), v)
            self.emit(n.If(mask.gen(idx), [write]) if mask is not None else write)
        if ptr.shape:
            self.loop_nest(ptr.shape, body)
        else:
            body(())
        self.consumed(*args)
        return None

    def op_atomic(self, op: Op, args: list, env: dict) -> TVal | None:
        self.flush()
        if op.name == "tt.atomic_cas":
            ptr, cmp, val = args
            mask, kind = None, "cas"
        else:
            ptr, val = args[0], args[1]
            mask = args[2] if len(args) > 2 else None
            kind = optable.ATOMIC_RMW.get(op.keywords[0] if op.keywords else "")
            if kind is None:
                raise self.error(f"the atomic operation {op.keywords[:1]}")
            cmp = None
        ty = op.results[0][1] if op.results else TType(ptr.shape, pointee(ptr.dtype))
        used = bool(op.results) and self.uses.get(op.results[0][0], 0) > 0
        out = self.new_buffer(ty.elem, ty.numel, "old") if used and ty.shape else None
        out_var = n.Var(self.fresh("old"), ty.elem) if used and not ty.shape else None
        if out_var is not None:
            self.emit(n.Declare(out_var, n.Const(0, ty.elem)))

        def body(idx):
            old = n.Var(self.fresh("o"), ty.elem) if out is not None else out_var
            if out is not None:
                self.emit(n.Declare(old, n.Const(0, ty.elem)))
            stmt = n.Atomic(kind, ptr.gen(idx), val.gen(idx), old, cmp.gen(idx) if cmp is not None else None)
            self.emit(n.If(mask.gen(idx), [stmt]) if mask is not None else stmt)
            if out is not None:
                self.emit(n.BufWrite(out, linear_index(idx, ty.shape), old))
        if ptr.shape:
            self.loop_nest(ptr.shape, body, vectorize=False)
        else:
            body(())
        if out is not None:
            tv = TVal(ty, None)
            self.read_buffer(tv, out)
            return tv
        if out_var is not None:
            return TVal(ty, lambda idx: out_var, materialized=True)
        return TVal(ty, lambda idx: n.Const(0, ty.elem), materialized=True)

    # ---- debugging ----
    def op_print(self, op: Op, args: list, env: dict) -> None:
        self.flush()
        prefix = op.attrs.get("prefix", "")
        hex_ = bool(op.attrs.get("hex", False))
        if not args:
            self.emit(n.Print(prefix, (), hex_))
            return None
        for a in args:
            if a.shape:
                self.loop_nest(a.shape, lambda idx, a=a: self.emit(n.Print(prefix, (a.gen(idx),), hex_, idx)),
                               vectorize=False)
            else:
                self.emit(n.Print(prefix, (a.scalar(),), hex_))
        return None

    def op_assert(self, op: Op, args: list, env: dict) -> None:
        (cond,) = args
        where = self.module.source_line(op.loc)
        message = op.attrs.get("message", "")
        if where:
            message = f"{where[0]}:{where[1]}: {message}"
        if cond.shape:
            self.loop_nest(cond.shape, lambda idx: self.emit(n.Assert(cond.gen(idx), message)), vectorize=False)
        else:
            self.emit(n.Assert(cond.scalar(), message))
        return None


def index_cost(*operands: TVal) -> int:
    """What an integer operation adds to a value's cost: nothing on indices computed from ranges,
    program ids and scalars (offsets, masks such as `cols < n`), which the C compiler folds into
    addresses and the mask pass into loop bounds, so a load or an elementwise value built on them
    stays cheap enough to read again; one on anything else (floats, values read from memory)."""
    return 0 if not any(is_float(o.dtype) or o.loads for o in operands) else 1


def used_in_line(name: str, uses: int, following: list) -> bool:
    """Whether all `uses` of `name` are operands of the ops that follow it in its block (not of a
    nested region's ops, not of the terminator: a value carried out of the block is stored anyway)."""
    return sum(op.operands.count(name) for op in following if op.name not in TERMINATORS) == uses


def feeds_reduction(name: str, following: list) -> bool:
    """Whether the first use of `name` among `following` is a reduction, reached across pure ops only
    (nothing in between writes memory or a tile that the value could read)."""
    for op in following:
        if name in op.operands:
            return op.name == "tt.reduce"
        if op.regions or not (op.name in PURE_OPS or op.name in optable.BINARY or op.name in optable.UNARY
                              or op.name in optable.CASTS):
            return False
    return False


PURE_OPS = {"arith.constant", "tt.get_program_id", "tt.get_num_programs", "tt.make_range", "tt.splat", "tt.broadcast",
            "tt.expand_dims", "tt.addptr", "arith.cmpi", "arith.cmpf", "arith.select"}

TERMINATORS = {"tt.return", "scf.yield", "scf.condition", "tt.reduce.return", "tt.scan.return",
               "cf.br", "cf.cond_br"}

HANDLERS = {
    "arith.constant": Lowerer.op_constant, "ub.poison": Lowerer.op_poison,
    "tt.get_program_id": Lowerer.op_program_id, "tt.get_num_programs": Lowerer.op_program_id,
    "tt.make_range": Lowerer.op_make_range, "tt.splat": Lowerer.op_splat, "tt.broadcast": Lowerer.op_broadcast,
    "tt.expand_dims": Lowerer.op_expand_dims, "tt.reshape": Lowerer.op_reshape, "tt.trans": Lowerer.op_trans,
    "tt.join": Lowerer.op_join, "tt.unsplat": Lowerer.op_unsplat, "tt.split": Lowerer.op_split,
    "tt.cat": Lowerer.op_cat, "tt.gather": Lowerer.op_gather,
    "tt.addptr": Lowerer.op_addptr, "tt.load": Lowerer.op_load, "tt.store": Lowerer.op_store,
    "tt.atomic_rmw": Lowerer.op_atomic, "tt.atomic_cas": Lowerer.op_atomic,
    "tt.reduce": Lowerer.op_reduce, "tt.scan": Lowerer.op_scan, "tt.dot": Lowerer.op_dot,
    "tt.histogram": Lowerer.op_histogram,
    "arith.cmpi": Lowerer.op_cmp, "arith.cmpf": Lowerer.op_cmp, "arith.select": Lowerer.op_select,
    "math.fma": Lowerer.op_fma, "tt.clampf": Lowerer.op_clampf, "tt.extern_elementwise": Lowerer.op_extern,
    "scf.for": Lowerer.op_for, "scf.if": Lowerer.op_if, "scf.while": Lowerer.op_while, "tt.call": Lowerer.op_call,
    "tt.print": Lowerer.op_print, "tt.assert": Lowerer.op_assert,
    "llvm.intr.assume": lambda self, op, args, env: None,  # a hint for the optimizer, nothing to compute
    # A program runs on one CPU thread in program order: a barrier only orders pending lazy loads.
    "gpu.barrier": lambda self, op, args, env: self.flush(),
}


class KernelText(str):
    """The printed IR (the `tbir` stage's text) carrying the IR object to the C stage."""
    kernel: n.Kernel


DISJOINT = n.Var("tb_disjoint", I32)  # set by the launcher's entry when the pointer arguments' memory is disjoint


def lower_module(text: str, options=None) -> KernelText:
    """The kernel's loop IR. Where a store forces copies of values it could overwrite (an output that
    might overlap an input at an offset), a second form assumes the pointer arguments' memory disjoint
    and keeps those values lazy (read again where used, no copy pass); the launcher's entry picks it
    when the arguments it was given are disjoint (`tb_disjoint`)."""
    module = parse_ttir(text)  # read-only to the lowering: each form's state lives on its Lowerer
    kernel = optimize(Lowerer(module, options).lower_kernel())
    disjoint = optimize(Lowerer(module, options, disjoint=True).lower_kernel())
    if disjoint.to_text() != kernel.to_text():
        disjoint = optimize(Lowerer(module, options, disjoint=True, prefix="d_").lower_kernel())
        kernel = dataclasses.replace(
            kernel, buffers=kernel.buffers + disjoint.buffers, disjoint_form=True,
            body=[n.If(n.Binary("ne", DISJOINT, c0(), "i1"), disjoint.body, kernel.body)])
    out = KernelText(kernel.to_text())
    out.kernel = kernel
    return out
