"""Loop-IR passes that every frontend's kernels go through before C is rendered.

`masks_to_bounds`: Triton programs guard every access with a mask such as `offs < n`, where `offs`
is the loop index plus an invariant. Evaluated per element, such a mask keeps the C compiler from
vectorizing (or forces masked instructions). When a loop's guard is a conjunction of terms that
are affine in the loop index (coefficient 1) or invariant, the pass turns them into loop bounds
and an `if` around the loop, and the body loses its mask. Selects whose condition has such terms
(masked loads materialized into a tile) split the loop into the part where the mask holds and the
parts where it does not.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from tilebridge.ir import nodes as n

TRUE, FALSE = n.Const(True, "i1"), n.Const(False, "i1")
I64 = "i64"


# ---- expression utilities ----------------------------------------------------------------------
def children(e) -> tuple:
    match e:
        case n.BufRead():
            return (e.index,)
        case n.MemRead():
            return (e.pointer,)
        case n.Unary() | n.Cast() | n.Bitcast():
            return (e.a,)
        case n.Binary():
            return (e.a, e.b)
        case n.Call():
            return tuple(e.args)
        case n.Select():
            return (e.cond, e.a, e.b)
    return ()


def subexpressions(e) -> Iterator:
    """`e` and every expression below it, parents first."""
    yield e
    for c in children(e):
        yield from subexpressions(c)


def buffer_reads(e) -> list:
    """(buffer name, index) of every tile read in `e`."""
    return [(x.buffer.name, x.index) for x in subexpressions(e) if isinstance(x, n.BufRead)]


def mentions(e, var: n.Var) -> bool:
    return e == var or any(mentions(c, var) for c in children(e))


def reads_memory(e) -> bool:
    return isinstance(e, n.MemRead) or any(reads_memory(c) for c in children(e))


def conjuncts(e) -> list:
    if isinstance(e, n.Binary) and e.op == "and" and e.dtype == "i1":
        return conjuncts(e.a) + conjuncts(e.b)
    return [e]


def offset_from(e, var: n.Var):
    """If e == var + offset (offset invariant), return offset as an i64 expression, else None."""
    if e == var:
        return n.Const(0, I64)
    if isinstance(e, n.Cast) and e.dtype in ("i32", "i64") and e.a.dtype in ("i32", "i64") and e.mode == "":
        return offset_from(e.a, var)
    if isinstance(e, n.Binary) and e.op in ("add", "sub") and e.dtype in ("i32", "i64"):
        a_has, b_has = mentions(e.a, var), mentions(e.b, var)
        if a_has and not b_has and not reads_memory(e.b):
            inner = offset_from(e.a, var)
            if inner is not None:
                return n.Binary(e.op, inner, widen(e.b), I64)
        if b_has and not a_has and e.op == "add" and not reads_memory(e.a):
            inner = offset_from(e.b, var)
            if inner is not None:
                return n.Binary("add", inner, widen(e.a), I64)
    return None


def const_bound(e) -> int | None:
    """A constant upper bound of an integer expression, where its form shows one (a constant, the
    minimum with one, as a tile's loop over a masked row has, or the maximum of two)."""
    match e:
        case n.Const(value=int() as value):
            return value
        case n.Cast(mode=""):
            return const_bound(e.a)
        case n.Binary(op="min"):
            bounds = [b for b in (const_bound(e.a), const_bound(e.b)) if b is not None]
            return min(bounds) if bounds else None
        case n.Binary(op="max"):  # a masked tile's clamped bound: max(min(size, n - start), 0)
            bounds = [const_bound(e.a), const_bound(e.b)]
            return None if None in bounds else max(bounds)
    return None


def contiguous_store(loop: n.For) -> n.MemWrite | None:
    """The store of a vectorized loop that computes scalars (and updates tiles) and ends by writing
    `base[var + offset]` (unit stride, `base` and `offset` invariant): the loops a C renderer may
    stream to memory."""
    if not (loop.vectorize and isinstance(loop.step, n.Const) and loop.step.value == 1 and loop.body):
        return None
    *before, last = loop.body
    if not isinstance(last, n.MemWrite) or not all(isinstance(s, (n.Declare, n.BufWrite)) for s in before):
        return None
    return last if contiguous(last.pointer, loop.var) else None


def contiguous(pointer, var: n.Var) -> bool:
    """Whether `pointer` is `base + offset(var)` with unit stride in `var` and `base` invariant: a unit
    stride whose moving addend is the last one, so `base` names the stream (the prefetch planner's key)."""
    return isinstance(pointer, n.Binary) and pointer.op == "ptradd" and not mentions(pointer.a, var) \
        and unit_stride(pointer, var)


def unit_stride(pointer, var: n.Var) -> bool:
    """Whether `pointer`, a chain of pointer additions (`base + a + b + ...`, as a load through
    `ptr + rows[:, None] * s0 + cols[None, :] * s1` is), moves by one element per step of `var`:
    exactly one addend mentions `var`, as `var + invariant`."""
    addends = []
    while isinstance(pointer, n.Binary) and pointer.op == "ptradd":
        addends.append(pointer.b)
        pointer = pointer.a
    if mentions(pointer, var):
        return False
    moving = [a for a in addends if mentions(a, var)]
    if len(moving) != 1:
        return False
    offset = offset_from(moving[0], var)
    return offset is not None and not mentions(offset, var)


def widen(e):
    return e if e.dtype == I64 else n.Cast(e, I64)


# (op, index side) → (bound kind, adjustment): `var + off < b` gives an upper bound b - off, etc.
BOUND_FORMS = {("lt", 0): ("hi", 0), ("le", 0): ("hi", 1), ("gt", 1): ("hi", 0), ("ge", 1): ("hi", 1),
               ("ge", 0): ("lo", 0), ("gt", 0): ("lo", 1), ("le", 1): ("lo", 0), ("lt", 1): ("lo", 1)}


def as_bound(c, var: n.Var):
    """A conjunct `var + off OP b` as ('lo'|'hi', i64 expression), or None."""
    if not isinstance(c, n.Binary) or c.dtype != "i1" or c.a.dtype not in ("i32", "i64"):
        return None
    for side in (0, 1):
        index_side, other = (c.a, c.b) if side == 0 else (c.b, c.a)
        form = BOUND_FORMS.get((c.op, side))
        if form is None or mentions(other, var) or reads_memory(other):
            continue
        off = offset_from(index_side, var)
        if off is None:
            continue
        kind, adjust = form
        value = n.Binary("sub", widen(other), off, I64)
        if adjust:
            value = n.Binary("add", value, n.Const(1, I64), I64)
        return kind, value
    return None


def substitute(e, known: dict):
    if e in known:
        return known[e]
    kids = children(e)
    if not kids:
        return e
    new = tuple(substitute(k, known) for k in kids)
    if new == kids:
        return e
    if isinstance(e, n.Binary) and e.op == "and" and e.dtype == "i1":
        if TRUE in new:
            return new[1] if new[0] == TRUE else new[0]
        if FALSE in new:
            return FALSE
    if isinstance(e, n.Select) and new[0] in (TRUE, FALSE):
        return new[1] if new[0] == TRUE else new[2]
    return rebuild(e, new)


def map_stmts(body: list, fn) -> list:
    """Apply an expression rewrite to every expression of a statement list; fold constant `if`s."""
    out = []
    for s in body:
        match s:
            case n.Declare():
                out.append(n.Declare(s.var, fn(s.init) if s.init is not None else None))
            case n.Assign():
                out.append(n.Assign(s.var, fn(s.value)))
            case n.BufWrite():
                out.append(n.BufWrite(s.buffer, fn(s.index), fn(s.value)))
            case n.MemWrite():
                out.append(n.MemWrite(fn(s.pointer), fn(s.value)))
            case n.If():
                cond = fn(s.cond)
                then, orelse = map_stmts(s.then, fn), map_stmts(s.orelse, fn)
                if cond == TRUE:
                    out.extend(then)
                elif cond == FALSE:
                    out.extend(orelse)
                else:
                    out.append(n.If(cond, then, orelse))
            case n.For():
                out.append(dataclasses.replace(s, start=fn(s.start), stop=fn(s.stop), body=map_stmts(s.body, fn)))
            case n.While():
                out.append(n.While(map_stmts(s.body, fn)))
            case n.Atomic():
                out.append(dataclasses.replace(s, pointer=fn(s.pointer), value=fn(s.value),
                                               compare=fn(s.compare) if s.compare is not None else None))
            case n.Assert():
                out.append(n.Assert(fn(s.cond), s.message))
            case n.Print():
                out.append(dataclasses.replace(s, values=tuple(fn(v) for v in s.values)))
            case _:
                out.append(s)
    return out


def substitute_stmts(body: list, known: dict) -> list:
    return map_stmts(body, lambda e: substitute(e, known))


def rebuild(e, kids: tuple):
    """`e` with new children (same kind and attributes)."""
    match e:
        case n.BufRead():
            return n.BufRead(e.buffer, kids[0])
        case n.MemRead():
            return n.MemRead(kids[0], e.dtype)
        case n.Unary() | n.Cast() | n.Bitcast():
            return dataclasses.replace(e, a=kids[0])
        case n.Binary():
            return dataclasses.replace(e, a=kids[0], b=kids[1])
        case n.Call():
            return dataclasses.replace(e, args=kids)
        case n.Select():
            return n.Select(kids[0], kids[1], kids[2], e.dtype)
    return e


def index64(e):
    """An address offset computed in 64 bits: i32 +, -, * of offsets cannot then wrap, so the C
    compiler sees consecutive addresses (with -fwrapv a wrapping i32 sum forces gathers/scatters).
    Only offsets whose i32 arithmetic would overflow — invalid addresses on any device — differ."""
    if isinstance(e, n.Binary) and e.op in ("add", "sub", "mul") and e.dtype == "i32":
        return n.Binary(e.op, index64(e.a), index64(e.b), I64)
    if isinstance(e, n.Binary) and e.op in ("add", "sub", "mul") and e.dtype == I64:
        return n.Binary(e.op, index64(e.a), index64(e.b), I64)
    if isinstance(e, n.Cast) and e.dtype == I64 and e.a.dtype == "i32" and e.mode == "":
        return index64(e.a)
    return widen(wide_addresses(e))


def wide_addresses(e):
    kids = children(e)
    if isinstance(e, n.Binary) and e.op == "ptradd":
        return n.Binary("ptradd", wide_addresses(e.a), index64(e.b), e.dtype)
    if isinstance(e, n.BufRead):  # tile indices too: a loop starting at a computed bound must stay contiguous
        return n.BufRead(e.buffer, index64(e.index))
    if not kids:
        return e
    new = tuple(wide_addresses(k) for k in kids)
    return e if new == kids else rebuild(e, new)


def widen_addresses(body: list) -> list:
    out = map_stmts(body, wide_addresses)
    return [rewrite_buffer_writes(s) for s in out]


def rewrite_buffer_writes(s):
    match s:
        case n.BufWrite():
            return n.BufWrite(s.buffer, index64(s.index), s.value)
        case n.If():
            return n.If(s.cond, [rewrite_buffer_writes(t) for t in s.then], [rewrite_buffer_writes(t) for t in s.orelse])
        case n.For() | n.While():
            return dataclasses.replace(s, body=[rewrite_buffer_writes(t) for t in s.body])
    return s


def select_conditions(e, acc: list) -> list:
    if isinstance(e, n.Select) and e.cond not in acc:
        acc.append(e.cond)
    for c in children(e):
        select_conditions(c, acc)
    return acc


def stmt_exprs(s) -> list:
    match s:
        case n.Declare():
            return [s.init] if s.init is not None else []
        case n.Assign():
            return [s.value]
        case n.BufWrite():
            return [s.index, s.value]
        case n.MemWrite():
            return [s.pointer, s.value]
    return []


# ---- the pass ------------------------------------------------------------------------------------
def clamp(lo_terms: list, hi_terms: list, start, stop) -> tuple:
    lo, hi = widen(start), widen(stop)
    for t in lo_terms:
        lo = n.Binary("max", lo, t, I64)
    for t in hi_terms:
        hi = n.Binary("min", hi, t, I64)
    lo = n.Binary("min", lo, widen(stop), I64)  # both ends stay inside the original range
    hi = n.Binary("max", hi, lo, I64)  # an empty range stays empty
    return n.Cast(lo, start.dtype), n.Cast(hi, stop.dtype)


def declared(body: list) -> set:
    """The variables a statement list declares, at any depth: values that change from one iteration
    to the next even though they are not the loop index."""
    found = set()
    for s in body:
        if isinstance(s, n.Declare):
            found.add(s.var)
        elif isinstance(s, n.If):
            found |= declared(s.then) | declared(s.orelse)
        elif isinstance(s, (n.For, n.While)):
            found |= declared(s.body) | ({s.var} if isinstance(s, n.For) else set())
    return found


def split_bounds(terms: list, var: n.Var, local: set = frozenset()):
    """Partition conjuncts into (lo bounds, hi bounds, invariant terms, the affine terms); None if a
    term is neither affine nor invariant (a term on a variable of the loop body, `local`, is not)."""
    lo, hi, invariant, affine = [], [], [], []
    for c in terms:
        if any(mentions(c, v) for v in local):
            return None
        bound = as_bound(c, var)
        if bound is not None:
            (lo if bound[0] == "lo" else hi).append(bound[1])
            affine.append(c)
        elif not mentions(c, var) and not reads_memory(c):
            invariant.append(c)
        else:
            return None
    return lo, hi, invariant, affine


def and_all(terms: list):
    expr = terms[0]
    for t in terms[1:]:
        expr = n.Binary("and", expr, t, "i1")
    return expr


def rewrite_for(loop: n.For) -> list:
    if not (isinstance(loop.step, n.Const) and loop.step.value == 1):
        return [loop]
    body, var = loop.body, loop.var
    # A loop whose whole body is guarded: the guard becomes the loop's range.
    if len(body) == 1 and isinstance(body[0], n.If) and not body[0].orelse:
        parts = split_bounds(conjuncts(body[0].cond), var, declared(body))
        if parts is not None and (parts[0] or parts[1]):
            lo, hi, invariant, affine = parts
            start, stop = clamp(lo, hi, loop.start, loop.stop)
            inner = substitute_stmts(body[0].then, {c: TRUE for c in affine + invariant})
            new = dataclasses.replace(loop, start=start, stop=stop, body=inner)
            return [n.If(and_all(invariant), [new])] if invariant else [new]
    # Selects on an affine condition (masked loads into a tile): split the range in three. Invariant
    # terms (a 2-D tile's row mask) choose between the split loops and one loop of `other` values.
    # Selects on data (`where(m == -inf, 0, m)`) stay selects in every part.
    # A guarded store after unguarded tile updates (a store loop fused with carry updates) splits the
    # same way: its guard is one more condition, and the `if` folds away in every part.
    *plain, last = body
    guarded = isinstance(last, n.If) and not last.orelse and not any(isinstance(s, (n.If, n.For, n.While)) for s in last.then)
    if any(isinstance(s, (n.If, n.For, n.While)) for s in (plain if guarded else body)):
        return [loop]
    conditions = [last.cond] if guarded else []
    for s in plain + (last.then if guarded else [last]):
        for e in stmt_exprs(s):
            select_conditions(e, conditions)
    local = declared(body)
    splits = [(c, parts) for c in conditions if (parts := split_bounds(conjuncts(c), var, local)) is not None]
    # One condition with bounds on the loop variable splits the range, whatever invariant selects
    # ride along (`where(k_in, x[0], 0)`, a masked load's `other` read from the row's first element):
    # the split substitutes the bound condition's invariant terms, and the rest stay selects.
    bounded = [split for split in splits if split[1][0] or split[1][1]]
    if len(bounded) == 1:
        splits = bounded
    if len(splits) != 1:
        return [loop]
    condition, (lo, hi, invariant, affine) = splits[0]
    start, stop = clamp(lo, hi, loop.start, loop.stop) if lo or hi else (loop.start, loop.stop)
    inside = substitute_stmts(body, {c: TRUE for c in affine + invariant})
    outside = substitute_stmts(body, {condition: FALSE})
    loops = []
    if lo and outside:  # (nothing runs outside a store's guard when nothing else is in the loop)
        loops.append(dataclasses.replace(loop, stop=start, body=outside))
    loops.append(dataclasses.replace(loop, start=start, stop=stop, body=inside))
    if hi and outside:
        loops.append(dataclasses.replace(loop, start=stop, body=outside))
    if invariant:  # e.g. the row mask of a 2-D tile: rows past the end take the `other` value throughout
        return [n.If(and_all(invariant), loops, [dataclasses.replace(loop, body=outside)] if outside else [])]
    return loops


def split_full_chunks(loop: n.For) -> list | None:
    """`for o in [a, b) step s: for j in [0, L): ... select(o + j + c < bound, ...)` (a row folded in
    chunks of L, as reductions do): split the outer range where every chunk lies inside the mask, so
    those chunks run a constant-length inner loop without selects; the rest keep the mask.
    None when the loop does not have that shape."""
    if not isinstance(loop.step, n.Const) or loop.step.value <= 1 or len(loop.body) != 1:
        return None
    inner = loop.body[0]
    if not (isinstance(inner, n.For) and inner.start == n.Const(0, inner.start.dtype) and isinstance(inner.stop, n.Const)
            and inner.step == n.Const(1, inner.step.dtype)):
        return None
    conditions = []
    for st in inner.body:
        if isinstance(st, (n.If, n.For, n.While)):
            return None
        for e in stmt_exprs(st):
            select_conditions(e, conditions)
    conditions = [c for c in conditions if mentions(c, inner.var)]  # selects on invariants stay as they are
    if len(conditions) != 1:
        return None
    last = n.Const(inner.stop.value - 1, inner.var.dtype)
    chunk_terms = []  # each conjunct at the chunk's last element, as a condition on the outer index
    invariant = []  # conjuncts on neither index (a 2-D tile's row mask): they stay, as a select on the whole chunk
    for c in conjuncts(conditions[0]):
        if not mentions(c, inner.var) and not mentions(c, loop.var) and not reads_memory(c) \
                and not any(mentions(c, v) for v in declared(inner.body)):
            invariant.append(c)
            continue
        bound = as_bound(c, inner.var)
        if bound is None or bound[0] != "hi":
            return None
        chunk_terms.append(substitute(c, {inner.var: last}))
    if not chunk_terms:
        return None
    parts = split_bounds(chunk_terms, loop.var, declared(inner.body))
    if parts is None or parts[0] or parts[2] or not parts[1]:
        return None
    step = n.Const(loop.step.value, I64)
    bound = parts[1][0]
    for t in parts[1][1:]:
        bound = n.Binary("min", bound, t, I64)
    # the first chunk start on the loop's grid at or past the bound: a + ceil(max(bound - a, 0) / s) * s
    span = n.Binary("max", n.Binary("sub", bound, widen(loop.start), I64), n.Const(0, I64), I64)
    chunks = n.Binary("div", n.Binary("add", span, n.Const(loop.step.value - 1, I64), I64), step, I64)
    split = n.Binary("min", n.Binary("add", widen(loop.start), n.Binary("mul", chunks, step, I64), I64), widen(loop.stop), I64)
    split = n.Cast(split, loop.stop.dtype)
    within = and_all(invariant) if invariant else TRUE
    full_inner = dataclasses.replace(inner, body=substitute_stmts(inner.body, {conditions[0]: within}))
    return [dataclasses.replace(loop, stop=split, body=[full_inner]), dataclasses.replace(loop, start=split)]


def masks_to_bounds(body: list) -> list:
    out = []
    for s in body:
        match s:
            case n.For():
                chunked = split_full_chunks(s)
                if chunked is not None:
                    full, s = chunked
                    out.extend(masks_to_bounds([full]))
                out.extend(rewrite_for(dataclasses.replace(s, body=masks_to_bounds(s.body))))
            case n.If():
                out.append(n.If(s.cond, masks_to_bounds(s.then), masks_to_bounds(s.orelse)))
            case n.While():
                out.append(n.While(masks_to_bounds(s.body)))
            case _:
                out.append(s)
    return out


# ---- loop fusion ---------------------------------------------------------------------------------
def plain_index(e):
    """An index with its integer widenings taken off: `(int64_t)i` is `i`."""
    while isinstance(e, n.Cast) and e.mode == "" and e.dtype in ("i32", "i64") and e.a.dtype in ("i32", "i64"):
        e = e.a
    return e


def loaded(body: list) -> set:
    """The pointers a statement list loads from, at any depth."""
    return {x.pointer for s in body for e in all_exprs(s) for x in subexpressions(e) if isinstance(x, n.MemRead)}


def written_params(kernel: n.Kernel) -> set[str]:
    """The parameters a kernel may write memory through: every variable a store's or an atomic's pointer
    (or a runtime routine's argument) mentions, followed back through the declarations and assignments
    of the variables it mentions in turn. An over-approximation: anything mentioned counts."""
    sinks, definitions = [], {}

    def visit(body: list) -> None:
        for s in body:
            match s:
                case n.MemWrite() | n.Atomic():
                    sinks.append(s.pointer)
                case n.Intrinsic():
                    sinks.extend(a for a in s.args if not isinstance(a, n.Buffer))
                case n.Declare(init=init) if init is not None:
                    definitions.setdefault(s.var.name, []).append(init)
                case n.Assign():
                    definitions.setdefault(s.var.name, []).append(s.value)
            visit(nested(s))
    visit(kernel.body)
    seen: set[str] = set()
    while sinks:
        for x in subexpressions(sinks.pop()):
            if isinstance(x, n.Var) and x.name not in seen:
                seen.add(x.name)
                sinks.extend(definitions.get(x.name, ()))
    return seen & {p.name for p in kernel.params}


def all_exprs(s) -> Iterator:
    """Every expression of a statement, nested statements included."""
    yield from own_exprs(s)
    for t in nested(s):
        yield from all_exprs(t)


@dataclasses.dataclass
class Effects:
    """What a run of statements reads and writes, by name (variables and tiles alike), and whether it
    touches memory; `pinned` is anything that must keep its place (stores, atomics, prints, asserts,
    jumps), which no reordering crosses."""

    reads: set = dataclasses.field(default_factory=set)
    writes: set = dataclasses.field(default_factory=set)
    loads: bool = False
    pinned: bool = False

    def add(self, s) -> Effects:
        match s:
            case n.Declare() | n.Assign():
                self.writes.add(s.var.name)
            case n.BufWrite():
                self.writes.add(s.buffer.name)
            case n.For() | n.If() | n.While():
                if isinstance(s, n.For):
                    self.writes.add(s.var.name)
                for t in nested(s):
                    self.add(t)
            case n.Intrinsic():  # routines on tiles (a dot, a fold): every tile argument read and written
                self.pinned = True
                tiles = {a.name for a in s.args if isinstance(a, n.Buffer)}
                self.reads |= tiles
                self.writes |= tiles
            case n.Atomic() if s.result is not None:
                self.pinned = True
                self.writes.add(s.result.name)
            case _:
                self.pinned = True
        for e in own_exprs(s):
            for x in subexpressions(e):
                if isinstance(x, n.Var):
                    self.reads.add(x.name)
                elif isinstance(x, n.BufRead):
                    self.reads.add(x.buffer.name)
                elif isinstance(x, n.MemRead):
                    self.loads = True
        return self


def nested(s) -> list:
    """The statements inside a compound statement."""
    match s:
        case n.If():
            return s.then + s.orelse
        case n.For() | n.While():
            return s.body
    return []


def own_exprs(s) -> list:
    """A statement's own expressions, not those of the statements inside it."""
    match s:
        case n.If() | n.Assert():
            return [s.cond]
        case n.For():
            return [s.start, s.stop, s.step]
        case n.Intrinsic():
            return [a for a in s.args if not isinstance(a, n.Buffer)]
        case n.Atomic():
            return [e for e in (s.pointer, s.value, s.compare) if e is not None]
        case n.Print():
            return list(s.values)
    return stmt_exprs(s)


def effects(body: list) -> Effects:
    found = Effects()
    for s in body:
        found.add(s)
    return found


def commute(one: Effects, two: Effects) -> bool:
    """Whether two statement runs may swap places: neither writes what the other touches, and no
    memory access meets a pinned statement."""
    if one.writes & (two.reads | two.writes) or two.writes & one.reads:
        return False
    return not (one.pinned and (two.pinned or two.loads) or two.pinned and one.loads)


def element_accesses(body: list) -> tuple | None:
    """(tile reads, tile writes) of a loop body that only declares locals and writes tiles (no memory
    writes, no control flow); None for any other body."""
    if not all(isinstance(s, (n.Declare, n.BufWrite)) for s in body):
        return None
    reads = [access for s in body for e in stmt_exprs(s) for access in buffer_reads(e)]
    return reads, [(s.buffer.name, s.index) for s in body if isinstance(s, n.BufWrite)]


def aligned_body(first: n.For, second: n.For) -> list | None:
    """`second`'s body in `first`'s loop variable, when the two loops run over the same range and are
    both vectorized or both not; None otherwise. What every fusion rule starts from."""
    if (first.start, first.stop, first.step, first.vectorize) != (second.start, second.stop, second.step, second.vectorize):
        return None
    return substitute_stmts(second.body, {second.var: first.var}) if second.var != first.var else second.body


def fuse_pair(first: n.For, second: n.For) -> n.For | None:
    """One loop doing both bodies, element by element, when that is the same computation: same range,
    and every tile that one loop writes and the other touches is touched only at the loop's own
    element (online softmax's max, rescaled sum and carry copy over one block). None otherwise."""
    body = aligned_body(first, second)
    if body is None or not first.vectorize:
        return None
    if not loaded(first.body) & loaded(body):
        return None  # fusing pays where both loops load the same memory (GELU's two passes, fused, ran 10% slower)
    one, two = element_accesses(first.body), element_accesses(body)
    if one is None or two is None:
        return None
    (reads1, writes1), (reads2, writes2) = one, two
    written1, written2 = {b for b, _ in writes1}, {b for b, _ in writes2}
    shared = (written1 & {b for b, _ in reads2 + writes2}) | (written2 & {b for b, _ in reads1})
    if any(b in shared and plain_index(index) != first.var for b, index in reads1 + writes1 + reads2 + writes2):
        return None
    return dataclasses.replace(first, body=first.body + body)


def fuse_independent(first: n.For, second: n.For) -> n.For | None:
    """One loop running both bodies in turn, when the loops share nothing but loads: same range,
    neither touches what the other writes, no stores. Two reductions over one block (layer norm
    backward's sums of w*dy and x_hat*w*dy) then read the block once; the merged body's own element
    loops fuse in turn."""
    body = aligned_body(first, second)
    if body is None:
        return None
    one, two = effects(first.body), effects(body)
    one.writes.discard(first.var.name)
    if one.pinned or two.pinned or not commute(one, two) or declared(first.body) & declared(body):
        return None
    merged = fuse_loops(first.body + body)
    if len(merged) == len(first.body) + len(body) and not loaded(first.body) & loaded(body):
        return None  # as in fuse_pair: only a shared load (here or in loops that fused inside) pays
    return dataclasses.replace(first, body=merged)


def ends_in_store(body: list) -> bool:
    """Whether a loop body computes values (and updates tiles), then stores one, masked or not."""
    if not body or not all(isinstance(s, (n.Declare, n.BufWrite)) for s in body[:-1]):
        return False
    last = body[-1]
    if isinstance(last, n.If) and not last.orelse and last.then:
        *values, last = last.then
        if not all(isinstance(s, n.Declare) for s in values):
            return False
    return isinstance(last, n.MemWrite)


def fuse_into_store(first: n.For, second: n.For) -> n.For | None:
    """A loop that stores to memory and a loop that only updates tiles, over one range, as one loop
    with the store last (so it may still stream): when neither touches what the other writes, and
    they read a tile in common (layer norm backward's dx store and its dw, db carry updates, all
    reading x_hat and dy). The tile-only loop touches no memory, so the stores cannot change it."""
    body = aligned_body(first, second)
    if body is None or not first.vectorize:
        return None
    storing, updating = (first.body, body) if ends_in_store(first.body) else (body, first.body)
    if not ends_in_store(storing) or element_accesses(updating) is None:
        return None
    one, two = effects(storing), effects(updating)
    if not commute(one, two) or declared(storing) & declared(updating) or not one.reads & two.reads:
        return None
    return dataclasses.replace(first, body=updating + storing)


HOIST_WINDOW = 32  # statements a loop may move up past to meet its twin: a reduction lowers to about fifteen


def fuse_loops(body: list) -> list:
    """Fuse element loops (`fuse_pair`), independent loops over one range (`fuse_independent`) and
    tile updates into a store loop (`fuse_into_store`), at every depth: each pass over a tile that a
    lowering emits separately (a materialized value, then the carries it updates; two reductions of
    one block) becomes one loop, so a block is loaded once and its arithmetic overlaps its loads. A
    loop moves up to an earlier twin past statements it commutes with (the first reduction's tree
    and scalar tail)."""
    out: list = []
    for s in body:
        match s:
            case n.For():
                s = dataclasses.replace(s, body=fuse_loops(s.body))
            case n.If():
                s = dataclasses.replace(s, then=fuse_loops(s.then), orelse=fuse_loops(s.orelse))
            case n.While():
                s = n.While(fuse_loops(s.body))
        if not (isinstance(s, n.For) and merge_upward(out, s)):
            out.append(s)
    return out


def merge_upward(out: list, loop: n.For) -> bool:
    """Fuse `loop` into the nearest earlier loop of `out` it can join, if every statement between
    commutes with it; True when it did."""
    mine = effects([loop])
    for k in range(len(out) - 1, max(len(out) - 1 - HOIST_WINDOW, -1), -1):
        earlier = out[k]
        if isinstance(earlier, n.For):
            fused = fuse_pair(earlier, loop) or fuse_independent(earlier, loop) or fuse_into_store(earlier, loop)
            if fused is not None:
                out[k] = fused
                return True
        if not commute(effects([earlier]), mine):
            return False
    return False


PIPELINE = [fuse_loops, masks_to_bounds, widen_addresses]


def optimize(kernel: n.Kernel) -> n.Kernel:
    body = kernel.body
    for p in PIPELINE:
        body = p(body)
    return dataclasses.replace(kernel, body=body)
