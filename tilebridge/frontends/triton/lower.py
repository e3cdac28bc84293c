"""TTIR → loop IR.

Every tensor value is a *lazy* generator: a function from a tuple of index expressions to a scalar IR
expression. Elementwise ops, broadcasts, splats, ranges, transposes and pointer arithmetic compose
generators, so a chain of them costs nothing until a consumer (a store, a reduction, a dot, a loop
carry) evaluates it inside its own loop nest: that is the fusion. A value is *materialized* into a
program-local buffer only when it is worth it or needed — used several times and not cheap, a load
that a later side effect could reorder, the operand of a dot, a loop-carried tile.
"""
from __future__ import annotations

import linecache
import re
import struct

from tilebridge.frontends.triton import optable
from tilebridge.frontends.triton.ttir import Block, Module, Op, TType, parse_ttir
from tilebridge.ir import nodes as n
from tilebridge.ir.passes import optimize
from tilebridge.ir.types import BITS, is_float, is_pointer, pointee

I32 = "i32"
EXPENSIVE_COST = 6  # a multi-use value costlier than this is computed once into a buffer
REDUCE_LANES = 16  # partial results per row reduction: one AVX-512 register of fp32


class LoweringError(NotImplementedError):
    """A construct tilebridge cannot compile; the message names it and the kernel source line."""


class TVal:
    """A TTIR value during lowering: its type and a generator of its element at an index."""
    __slots__ = ("type", "gen", "cost", "loads", "reads", "materialized", "buffer", "transpose_of")

    def __init__(self, type_: TType, gen, cost: int = 0, loads: frozenset = frozenset(),
                 reads: frozenset = frozenset(), materialized: bool = False) -> None:
        self.type, self.gen, self.cost, self.loads, self.reads = type_, gen, cost, loads, reads
        self.materialized = materialized
        self.buffer: n.Buffer | None = None  # the whole-tile buffer holding the value, once there is one
        self.transpose_of: tuple | None = None  # (source, order) when the value is a permutation of another

    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.elem

    def scalar(self) -> n.Expr:
        return self.gen(())


def c0(value: int = 0) -> n.Const:
    return n.Const(value, I32)


def linear_index(idx: tuple, shape: tuple) -> n.Expr:
    expr = None
    stride = 1
    for k in reversed(range(len(shape))):
        if shape[k] != 1:
            term = idx[k] if stride == 1 else n.Binary("mul", idx[k], c0(stride), I32)
            expr = term if expr is None else n.Binary("add", term, expr, I32)
        stride *= shape[k]
    return expr if expr is not None else c0()


def derived(type_: TType, gen, *sources: TVal, cost: int = 1) -> TVal:
    return TVal(type_, gen, cost + sum(s.cost for s in sources),
                frozenset().union(*(s.loads for s in sources)), frozenset().union(*(s.reads for s in sources)))


def parse_constant(text: str, elem: str):
    text = text.strip()
    if text.startswith("dense<"):
        text = text[len("dense<"):-1].strip()
        if text.startswith("["):
            raise ValueError("non-splat dense constants")
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("0x") and is_float(elem):
        bits = int(text, 16)
        fmt = {"f32": ("<I", "<f"), "f64": ("<Q", "<d"), "f16": ("<H", "<e")}.get(elem)
        if fmt is None:  # bf16 / fp8 bit patterns: widen through f32
            if elem == "bf16":
                return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
            raise ValueError(f"hex constant of type {elem}")
        return struct.unpack(fmt[1], struct.pack(fmt[0], bits))[0]
    if is_float(elem):
        return float(text)
    value = int(text, 0)
    bits = BITS.get(elem, 64)
    if elem == "i1":
        return bool(value & 1)
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


class Lowerer:
    def __init__(self, module: Module, options=None) -> None:
        self.module = module
        self.options = options
        self.buffers: list[n.Buffer] = []
        self.stmts: list = []
        self.counter = 0
        self.pending: list[TVal] = []  # lazy loads not yet evaluated
        self.uses: dict[str, int] = {}
        self.nested_uses: set[str] = set()
        self.op: Op | None = None
        self.pids = tuple(n.Var(f"tb_pid_{a}", I32) for a in "xyz")
        self.nums = tuple(n.Var(f"tb_num_{a}", I32) for a in "xyz")

    # ---- naming and emission ----
    def fresh(self, stem: str) -> str:
        self.counter += 1
        stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)
        return f"{'v' if not stem or stem[0].isdigit() else ''}{stem}_{self.counter}"

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

    def loop_nest(self, shape: tuple, body_fn, vectorize: bool = True) -> None:
        """Emit loops over `shape` (innermost vectorizable); dims of size 1 get no loop."""
        idx = tuple(c0() if d == 1 else n.Var(self.fresh("i"), I32) for d in shape)
        outer = self.stmts
        body: list = []
        self.stmts = body
        body_fn(idx)
        self.stmts = outer
        inner_dims = [k for k, d in enumerate(shape) if d != 1]
        for k in reversed(inner_dims):
            body = [n.For(idx[k], c0(), c0(shape[k]), c0(1), body, vectorize=vectorize and k == inner_dims[-1])]
        self.stmts.extend(body)

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
        buf = self.new_buffer(tv.dtype, tv.type.numel, stem)
        gen, shape = tv.gen, tv.shape
        self.loop_nest(shape, lambda idx: self.emit(n.BufWrite(buf, linear_index(idx, shape), gen(idx))))
        self.read_buffer(tv, buf)
        return tv

    def flush(self, keep: frozenset = frozenset()) -> None:
        """Evaluate every pending lazy load (before a side effect could change what it reads)."""
        for tv in list(self.pending):
            if tv not in keep:
                self.materialize(tv, "ld")
        self.pending = [p for p in self.pending if p in keep]

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
            env[name] = TVal(ty, lambda idx, v=var: v, materialized=True)
        self.lower_body(fn.body, env, [])
        return n.Kernel(fn.name, params, self.buffers, self.stmts, self.pids, self.nums)

    def lower_block(self, block: Block, env: dict) -> list | None:
        """Lower the ops of a block; return the operands of its terminator (yield/return/condition)."""
        for op in block.ops:
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
            results = handler(self, op, args, env)
            if results is None:
                continue
            if isinstance(results, TVal):
                results = [results]
            for (name, _), tv in zip(op.results, results):
                env[name] = self.settle(name, tv)
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

    def settle(self, name: str, tv: TVal) -> TVal:
        """Decide whether a new value stays lazy."""
        uses = self.uses.get(name, 0)
        if tv.materialized:
            return tv
        if not tv.shape:
            return self.materialize(tv, name[1:])
        if uses > 1 and (tv.loads or tv.cost > EXPENSIVE_COST):
            return self.materialize(tv, name[1:])
        if name in self.nested_uses and (tv.loads or tv.cost > 2):
            return self.materialize(tv, name[1:])
        return tv

    # ---- elementwise ----
    def op_binary(self, op: Op, args: list, env: dict) -> TVal:
        a, b = args
        ir_op, ty = optable.BINARY[op.name], op.results[0][1]
        return derived(ty, lambda idx: n.Binary(ir_op, a.gen(idx), b.gen(idx), ty.elem), a, b)

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
        return derived(ty, lambda idx: n.Binary(ir_op, a.gen(idx), b.gen(idx), "i1"), a, b)

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
        if ty.shape:
            self.pending.append(tv)
        return tv

    def op_store(self, op: Op, args: list, env: dict) -> None:
        ptr, value = args[0], args[1]
        mask = args[2] if len(args) > 2 else None
        keep = frozenset().union(*(a.loads for a in args))
        self.flush(keep)
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

        def full(o_idx, r, i_idx):
            return o_idx + (r,) + i_idx

        if not inner_shape or all(d == 1 for d in inner_shape):
            # reduce along the innermost axis: a scalar accumulator per output element
            outs = [self.new_buffer(d, max(1, _numel(out_shape)), "red") if out_shape else n.Var(self.fresh("red"), d)
                    for d in dtypes]
            for o in outs:
                if isinstance(o, n.Var):
                    self.emit(n.Declare(o))
            zeros = tuple(c0() for _ in inner_shape)

            lanes = REDUCE_LANES if R >= 2 * REDUCE_LANES else 0
            partials = [self.new_buffer(d, lanes, "lanes") for d in dtypes] if lanes else []
            if lanes:
                # Loads (usually masked) go to a tile first: one pass whose mask becomes loop bounds,
                # instead of a mask split inside every 16-lane step.
                for a in args:
                    if a.loads:
                        self.materialize(a, "row")

            def body(o_idx):
                at = lambda r: full(o_idx, r, zeros)  # noqa: E731
                accs = [n.Var(self.fresh("acc"), d) for d in dtypes]
                start = c0(1)
                if lanes:
                    self.reduce_lanes(region, env, args, partials, at, R)
                    start = c0(R - R % lanes)
                    for acc, p in zip(accs, partials):
                        self.emit(n.Declare(acc, n.BufRead(p, c0())))
                    self.fold(region, env, accs, lambda j: [n.BufRead(p, j) for p in partials], 1, lanes)
                else:
                    for acc, a in zip(accs, args):
                        self.emit(n.Declare(acc, a.gen(at(c0()))))
                self.fold(region, env, accs, lambda r: [a.gen(at(r)) for a in args], start, R)
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
            outs = [self.new_buffer(d, _numel(out_shape), "red") for d in dtypes]

            def body(o_idx):
                def init(i_idx):
                    for o, a in zip(outs, args):
                        self.emit(n.BufWrite(o, linear_index(o_idx + i_idx, out_shape), a.gen(full(o_idx, c0(), i_idx))))
                self.loop_nest(inner_shape, init)
                r = n.Var(self.fresh("r"), I32)
                outer_stmts, loop_body = self.stmts, []
                self.stmts = loop_body

                def step(i_idx):
                    pos = linear_index(o_idx + i_idx, out_shape)
                    current = [n.BufRead(o, pos) for o in outs]
                    new = self.combine(region, env, current + [a.gen(full(o_idx, r, i_idx)) for a in args])
                    tmps = [n.Var(self.fresh("nv"), d) for d in dtypes]
                    for t, v in zip(tmps, new):
                        self.emit(n.Declare(t, v))
                    for o, t in zip(outs, tmps):
                        self.emit(n.BufWrite(o, pos, t))
                self.loop_nest(inner_shape, step)
                self.stmts = outer_stmts
                self.emit(n.For(r, c0(1), c0(R), c0(1), loop_body))
            if outer:
                self.loop_nest(outer, body, vectorize=False)
            else:
                body(())
        results = []
        for (_, ty), o in zip(op.results, outs):
            if isinstance(o, n.Var):
                results.append(TVal(ty, lambda idx, v=o: v, materialized=True))
            else:
                tv = TVal(ty, None)
                self.read_buffer(tv, o)
                results.append(tv)
        return results

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

    def reduce_lanes(self, region: Block, env: dict, args: list, partials: list, at, R: int) -> None:
        """Fold a row into REDUCE_LANES partial results, lane j taking elements j, j+L, j+2L, ...

        Every step is elementwise over the lanes, so the C compiler vectorizes any combine region
        (NaN-aware max, argmax with its index tie-break, ...) without reassociating anything itself.
        Triton's reductions assume an associative, commutative combine; this grouping relies on it.
        """
        lanes = len(partials) and partials[0].size
        self.loop_nest((lanes,), lambda j: [self.emit(n.BufWrite(p, j[0], a.gen(at(j[0])))) for p, a in zip(partials, args)])
        r0 = n.Var(self.fresh("r0"), I32)
        outer_stmts, loop_body = self.stmts, []
        self.stmts = loop_body

        def step(j):
            pos = n.Binary("add", r0, j[0], I32)
            new = self.combine(region, env, [n.BufRead(p, j[0]) for p in partials] + [a.gen(at(pos)) for a in args])
            temps = [n.Var(self.fresh("nv"), p.dtype) for p in partials]
            for t, v in zip(temps, new):
                self.emit(n.Declare(t, v))
            for p, t in zip(partials, temps):
                self.emit(n.BufWrite(p, j[0], t))
        self.loop_nest((lanes,), step)
        self.stmts = outer_stmts
        self.emit(n.For(r0, c0(lanes), c0(R - R % lanes), c0(lanes), loop_body))

    def op_scan(self, op: Op, args: list, env: dict) -> list:
        axis = int(op.attrs["axis"])
        reverse = bool(op.attrs.get("reverse", False))
        shape = args[0].shape
        R = shape[axis]
        region = op.regions[0]
        dtypes = [a.dtype for a in args]
        self.consumed(*args)
        outs = [self.new_buffer(d, _numel(shape), "scan") for d in dtypes]
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
        in_t = acc_t
        self.consumed(a, b, c)
        batch = a.shape[:-2]
        M, K = a.shape[-2:]
        N = b.shape[-1]
        A = self.new_buffer(in_t, a.type.numel, "dot_a")
        B = self.new_buffer(in_t, b.type.numel, "dot_b")
        for src, buf in ((a, A), (b, B)):
            self.fill_operand(src, buf, in_t)
        if c.buffer is not None and c.dtype == acc_t and self.uses.get(op.operands[2], 0) == 1:
            # The accumulator has no other use (typically a loop-carried tile): accumulate in place.
            D = c.buffer
        else:
            D = self.new_buffer(acc_t, ty.numel, "dot")
            self.loop_nest(ty.shape, lambda idx: self.emit(
                n.BufWrite(D, linear_index(idx, ty.shape), n.Cast(c.gen(idx), acc_t))))

        kernel = {"f32": "tb_dot_f32", "f64": "tb_dot_f64", "i32": "tb_dot_i32", "i64": "tb_dot_i64"}[acc_t]
        for i in range(_numel(batch)):
            self.emit(n.Intrinsic(kernel, (c0(M), c0(N), c0(K), buffer_from(A, i * M * K), buffer_from(B, i * K * N),
                                           buffer_from(D, i * M * N))))
        out = TVal(TType(ty.shape, acc_t), None)
        self.read_buffer(out, D)
        if acc_t != ty.elem:
            return derived(ty, lambda idx: n.Cast(out.gen(idx), ty.elem), out)
        return out

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
        self.loop_nest(shape, lambda idx: self.emit(n.BufWrite(buf, linear_index(idx, shape), n.Cast(src.gen(idx), dtype))))

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

    # ---- control flow ----
    def storage_for(self, ty: TType, stem: str):
        if ty.shape:
            return self.new_buffer(ty.elem, ty.numel, stem)
        var = n.Var(self.fresh(stem), ty.elem)
        self.emit(n.Declare(var))
        return var

    def storage_value(self, ty: TType, storage) -> TVal:
        if isinstance(storage, n.Var):
            return TVal(ty, lambda idx: storage, reads=frozenset([storage.name]), materialized=True)
        tv = TVal(ty, None)
        self.read_buffer(tv, storage)
        return tv

    def write_storage(self, storage, tv: TVal) -> None:
        if isinstance(storage, n.Var):
            self.emit(n.Assign(storage, tv.scalar()))
        else:
            shape = tv.shape
            self.loop_nest(shape, lambda idx: self.emit(n.BufWrite(storage, linear_index(idx, shape), tv.gen(idx))))

    def write_all(self, storages: list, values: list) -> None:
        """Parallel assignment: values that read any of the storages go through temporaries first."""
        names = {s.name for s in storages}
        staged = []
        for s, v in zip(storages, values):
            if v.reads == frozenset([s.name]) and v.materialized:
                continue  # yields its own carried value unchanged
            if v.reads & names:
                v = self.materialize(TVal(v.type, v.gen, v.cost, v.loads, v.reads), "carry")
            staged.append((s, v))
        for s, v in staged:
            self.write_storage(s, v)

    def op_for(self, op: Op, args: list, env: dict) -> list:
        self.flush()
        lb, ub, step = (a.scalar() for a in args[:3])
        inits = args[3:]
        body_block = op.regions[0]
        iv_name, iv_type = body_block.args[0]
        storages = [self.storage_for(ty, "carry") for _, ty in body_block.args[1:]]
        for s, v in zip(storages, inits):
            self.write_storage(s, v)
        self.consumed(*inits)
        iv = n.Var(self.fresh("iv"), iv_type.elem)
        inner = dict(env)
        inner[iv_name] = TVal(iv_type, lambda idx: iv, materialized=True)
        for (name, ty), s in zip(body_block.args[1:], storages):
            inner[name] = self.storage_value(ty, s)
        outer_stmts, loop_body = self.stmts, []
        self.stmts = loop_body
        term = self.lower_block(body_block, inner)
        self.flush()
        if term is not None:
            self.write_all(storages, [inner[name] for name in term.operands])
        self.stmts = outer_stmts
        self.emit(n.For(iv, lb, ub, step, loop_body))
        return [self.storage_value(ty, s) for (_, ty), s in zip(op.results, storages)]

    def op_if(self, op: Op, args: list, env: dict) -> list:
        self.flush()
        cond = args[0].scalar()
        storages = [self.storage_for(ty, "ifv") for _, ty in op.results]
        branches = []
        for region in op.regions:
            outer_stmts, body = self.stmts, []
            self.stmts = body
            inner = dict(env)
            term = self.lower_block(region, inner)
            self.flush()
            if term is not None and storages:
                for s, name in zip(storages, term.operands):
                    self.write_storage(s, inner[name])
            self.stmts = outer_stmts
            branches.append(body)
        self.emit(n.If(cond, branches[0], branches[1] if len(branches) > 1 else []))
        return [self.storage_value(ty, s) for (_, ty), s in zip(op.results, storages)]

    def op_while(self, op: Op, args: list, env: dict) -> list:
        self.flush()
        before, after = op.regions
        before_st = [self.storage_for(ty, "wb") for _, ty in before.args]
        after_st = [self.storage_for(ty, "wa") for _, ty in op.results]
        for s, v in zip(before_st, args):
            self.write_storage(s, v)
        outer_stmts, body = self.stmts, []
        self.stmts = body
        inner = dict(env)
        for (name, ty), s in zip(before.args, before_st):
            inner[name] = self.storage_value(ty, s)
        term = self.lower_block(before, inner)
        self.flush()
        cond = inner[term.operands[0]].scalar()
        cond_var = n.Var(self.fresh("cond"), "i1")
        self.emit(n.Declare(cond_var, cond))
        for s, name in zip(after_st, term.operands[1:]):
            self.write_storage(s, inner[name])
        self.emit(n.If(n.Unary("not", cond_var, "i1"), [n.Break()]))
        inner2 = dict(env)
        for (name, ty), s in zip(after.args, after_st):
            inner2[name] = self.storage_value(ty, s)
        term2 = self.lower_block(after, inner2)
        self.flush()
        if term2 is not None:
            self.write_all(before_st, [inner2[name] for name in term2.operands])
        self.stmts = outer_stmts
        self.emit(n.While(body))
        return [self.storage_value(ty, s) for (_, ty), s in zip(op.results, after_st)]

    def op_call(self, op: Op, args: list, env: dict) -> list:
        self.flush()
        callee = op.attrs.get("callee") or (op.keywords[0] if op.keywords else "")
        m = re.search(r"@(\"[^\"]*\"|[\w$.]+)", op.text)
        name = m.group(1).strip('"') if m else callee.lstrip("@")
        fn = self.module.functions.get(name)
        if fn is None:
            raise self.error(f"a call to the unknown function {name!r}")
        inner = {}
        for (arg_name, _), value in zip(fn.args, args):
            inner[arg_name] = value
        saved = self.op
        results = self.lower_body(fn.body, inner, fn.result_types)
        self.op = saved
        return results

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


def _numel(shape: tuple) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


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


def buffer_from(buffer: n.Buffer, offset: int) -> n.Buffer:
    """The part of `buffer` from element `offset` on, as a call argument (one matrix of a batched dot)."""
    return buffer if offset == 0 else n.Buffer(f"({buffer.name} + {offset})", buffer.dtype, buffer.size - offset)


class KernelText(str):
    """The printed IR (the `tbir` stage's text) carrying the IR object to the C stage."""
    kernel: n.Kernel


def lower_module(text: str, options=None) -> KernelText:
    module = parse_ttir(text)
    kernel = optimize(Lowerer(module, options).lower_kernel())
    out = KernelText(kernel.to_text())
    out.kernel = kernel
    return out
