"""Programs in lockstep: one thread runs a few programs side by side, so each core reads several streams.

A thread of the CPU runtime runs its share of the grid one program after another. For a kernel that
streams a row in and reduces it, that is one stream of reads per core, and one stream does not keep
enough cache misses in flight to reach the memory's bandwidth: the hardware prefetcher follows it a
limited distance ahead and starts again at every 4 KiB page. Reading two streams far apart at once
does (measured on this project's hosts: a hand-written row maximum over a 64 MiB fp32 tensor, one
4 KiB row per step, 1.65 ms with one stream per core, 1.46 ms with two, 1.43 ms with four, against
1.55 ms for `torch.amax`; two *adjacent* rows side by side were slower still, 2.1 ms).

`gang(kernel, k)` turns a program body into the body of `k` programs run in lockstep: instance `j`'s
program ids are `tb_pid_x_g{j}`... The runtime hands instance `j` the program `j` parts further
along its thread's run of programs, so the instances read memory far apart. What depends on the
program (its ids, memory it read, its tiles) is computed once per instance, under renamed variables
and tiles; what does not (launch arguments and values computed from them alone) is computed once.
A loop whose bounds are the same for every instance and that stores nothing runs once, with the
instances' bodies side by side in it, so their loads interleave; any other statement runs once per
instance, one instance after the other. Triton makes no promise about the order in which programs
run, so interleaving them changes no result. Kernels with statements whose order across programs
a user could see or depend on (atomics, prints, loops left by `break`, jumps) are not ganged.
"""
from __future__ import annotations

import dataclasses

from tilebridge.ir import nodes as n
from tilebridge.ir.passes import children, const_bound, loaded, nested, own_exprs, rebuild, subexpressions, substitute_stmts

PROGRAM_IDS = ("tb_pid_x", "tb_pid_y", "tb_pid_z")
UNGANGABLE = (n.While, n.Break, n.Label, n.Goto, n.Atomic, n.Print)


def gangable(kernel: n.Kernel) -> bool:
    """Whether every statement of the kernel may run interleaved with other programs' statements."""
    def ok(body: list) -> bool:
        return all(not isinstance(s, UNGANGABLE) and ok(nested(s)) for s in body)
    return ok(kernel.body)


def stores(s) -> bool:
    return isinstance(s, n.MemWrite) or any(stores(t) for t in nested(s))


class Uniformity:
    """Which variables hold the same value in every program: those computed, in control flow that is
    the same for every program, from launch arguments and other such variables alone."""

    def __init__(self, body: list) -> None:
        self.varying = set(PROGRAM_IDS)
        while True:
            before = len(self.varying)
            self.visit(body, False)
            if len(self.varying) == before:
                return

    def expr(self, e) -> bool:
        """Whether `e` may differ between programs (loads and tiles are taken to)."""
        return any(isinstance(x, (n.MemRead, n.BufRead)) or isinstance(x, n.Var) and x.name in self.varying
                   for x in subexpressions(e))

    def jammed(self, s) -> bool:
        """Whether a compound statement runs once for all instances (else once per instance)."""
        match s:
            case n.For():
                return not any(self.expr(e) for e in own_exprs(s)) and not stores(s)
            case n.If():
                return not self.expr(s.cond)
        return False

    def visit(self, body: list, varying: bool) -> None:
        for s in body:
            match s:
                case n.Declare() | n.Assign():
                    value = s.init if isinstance(s, n.Declare) else s.value
                    if varying or value is not None and self.expr(value):
                        self.varying.add(s.var.name)
                case n.For() | n.If():
                    inside = varying or not self.jammed(s)
                    if isinstance(s, n.For) and inside:
                        self.varying.add(s.var.name)
                    self.visit(nested(s), inside)


class Instance:
    """The renaming that gives one instance its own program ids, variables and tiles."""

    def __init__(self, index: int, varying: set[str]) -> None:
        self.suffix, self.varying, self.tiles = f"_g{index}", varying, {}

    def var(self, v: n.Var) -> n.Var:
        return n.Var(v.name + self.suffix, v.dtype) if v.name in self.varying else v

    def tile(self, b: n.Buffer) -> n.Buffer:
        if b.name not in self.tiles:
            self.tiles[b.name] = dataclasses.replace(b, name=b.name + self.suffix)
        return self.tiles[b.name]

    def expr(self, e):
        if isinstance(e, n.Var):
            return self.var(e)
        kids = children(e)
        new = tuple(self.expr(k) for k in kids)
        if isinstance(e, n.BufRead):
            return n.BufRead(self.tile(e.buffer), new[0])
        return rebuild(e, new) if new != kids else e

    def stmt(self, s):
        x = self.expr
        match s:
            case n.Declare():
                return n.Declare(self.var(s.var), x(s.init) if s.init is not None else None)
            case n.Assign():
                return n.Assign(self.var(s.var), x(s.value))
            case n.BufWrite():
                return n.BufWrite(self.tile(s.buffer), x(s.index), x(s.value))
            case n.MemWrite():
                return n.MemWrite(x(s.pointer), x(s.value))
            case n.If():
                return n.If(x(s.cond), [self.stmt(t) for t in s.then], [self.stmt(t) for t in s.orelse])
            case n.For():
                return dataclasses.replace(s, var=self.var(s.var), start=x(s.start), stop=x(s.stop), step=x(s.step),
                                           body=[self.stmt(t) for t in s.body])
            case n.Assert():
                return n.Assert(x(s.cond), s.message)
            case n.Intrinsic():
                return n.Intrinsic(s.name, tuple(self.tile(a) if isinstance(a, n.Buffer) else x(a) for a in s.args))
        return s


def unique_loop_variables(body: list, seen: set | None = None) -> list:
    """`body` with every loop's variable named apart from every other loop's: the lowering reuses one
    name for the pieces of a split loop, and one of them may be jammed while another is not."""
    seen = set() if seen is None else seen
    out = []
    for s in body:
        match s:
            case n.For():
                inner = unique_loop_variables(s.body, seen)
                var = s.var
                if var.name in seen:
                    var = n.Var(f"{s.var.name}_{len(seen)}", s.var.dtype)
                    inner = substitute_stmts(inner, {s.var: var})
                seen.add(var.name)
                out.append(dataclasses.replace(s, var=var, body=inner))
            case n.If():
                out.append(n.If(s.cond, unique_loop_variables(s.then, seen), unique_loop_variables(s.orelse, seen)))
            case _:
                out.append(s)
    return out


def gang(kernel: n.Kernel, k: int) -> tuple[list, list[n.Buffer]]:
    """The body of `k` lockstep instances of `kernel`'s program, and the tiles it uses (each
    instance's own). The kernel must be `gangable`."""
    source = unique_loop_variables(kernel.body)
    uniform = Uniformity(source)
    instances = [Instance(j, uniform.varying) for j in range(k)]

    def jam(body: list) -> list:
        out = []
        for s in body:
            if isinstance(s, (n.For, n.If)) and uniform.jammed(s):
                if isinstance(s, n.For):
                    out.append(dataclasses.replace(s, body=jam(s.body)))
                else:
                    out.append(n.If(s.cond, jam(s.then), jam(s.orelse)))
            elif isinstance(s, (n.Declare, n.Assign)) and s.var.name not in uniform.varying:
                out.append(s)
            else:
                out.extend(i.stmt(s) for i in instances)
        return out

    body = jam(source)
    tiles = [i.tile(b) for i in instances for b in kernel.buffers]
    return body, tiles


# A loop that stores at most this many elements (its constant bound), in no other loop, counts as a
# program's few results, not a stream out: block-of-rows sums and maxima (4 or 16 rows a program, a
# store loop of that length) ran 3-5% faster ganged, like the one-row kernels; softmax over 128
# columns (512-byte rows out) 6% faster; rows of 1024 elements and more out, 6-43% slower.
SMALL_STORE = 128


def constant(e) -> int | None:
    """The value of an integer expression of constants alone (a masked tile loop starts at min(0, size))."""
    match e:
        case n.Const(value=int() as value):
            return value
        case n.Cast(mode=""):
            return constant(e.a)
        case n.Binary(op="min" | "max"):
            a, b = constant(e.a), constant(e.b)
            return None if a is None or b is None else (min(a, b) if e.op == "min" else max(a, b))
    return None


def few_stores(body: list, in_loop: bool = False) -> bool:
    """Whether every loop of `body` that stores to memory stores only a program's few results: it
    has a constant bound of at most SMALL_STORE and sits in no other loop."""
    for s in body:
        if isinstance(s, n.For) and stores(s):
            bound, first = const_bound(s.stop), constant(s.start)
            if in_loop or None in (bound, first) or first < 0 or bound - first > SMALL_STORE \
                    or not few_stores(s.body, True):
                return False
        elif not few_stores(nested(s), in_loop or isinstance(s, n.For)):
            return False
    return True


def interleaves(kernel: n.Kernel) -> bool:
    """Whether ganging would pay: the kernel reduces what it reads (`few_stores`; a kernel that
    streams rows back out ran 6-43% slower ganged, alternated through the launcher's entry: softmax
    over 1024 and 8192 columns, layer norm, RMSNorm, GELU, SwiGLU, cumsum), and ganging puts loads of
    different instances into one loop (one that reads memory, with the same bounds in every program)."""
    if not gangable(kernel) or not few_stores(kernel.body):
        return False
    uniform = Uniformity(unique_loop_variables(kernel.body))

    def found(body: list) -> bool:
        return any(isinstance(s, n.For) and uniform.jammed(s) and loaded([s])
                   or uniform.jammed(s) and found(nested(s)) for s in body)
    return found(kernel.body)
