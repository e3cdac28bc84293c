"""Lowering of control flow: loop-carried and branch results as storage, while loops, calls."""
from __future__ import annotations

import re

from tilebridge.frontends.triton.tiles import (
    TVal,
    linear_index,
)
from tilebridge.frontends.triton.ttir import Block, Op, TType
from tilebridge.ir import nodes as n
from tilebridge.ir.passes import buffer_reads


class ControlLowering:
    """Mixed into `Lowerer`; uses its emission and materialization helpers."""

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

    def update_in_place(self, storage: n.Buffer, tv: TVal) -> None:
        """storage := tv, where tv reads storage itself: `acc = acc + x` in a loop body.

        Written straight over the storage when every read of it in tv's expression is of the very
        element being written (the common accumulator); otherwise, e.g. a transposed read of the
        carry, through a temporary buffer and a copy, as a parallel assignment must be.
        """
        shape = tv.shape
        temp: list = []  # the temporary buffer, when one is needed (the loop body is built once)

        def body(idx: tuple) -> None:
            at = linear_index(idx, shape)
            value = tv.gen(idx)
            if any(index != at for name, index in buffer_reads(value) if name == storage.name):
                temp.append(self.new_buffer(tv.dtype, tv.type.numel, "carry"))
            self.emit(n.BufWrite(temp[0] if temp else storage, at, value))

        self.loop_nest(shape, body)
        if temp:
            copy = TVal(tv.type, None)
            self.read_buffer(copy, temp[0])
            self.write_storage(storage, copy)

    def write_all(self, storages: list, values: list) -> None:
        """Parallel assignment: every value reads the storages as they were before any was written.

        Storages are written one at a time, each once no value still to be written reads it (online
        softmax's running sum reads the running max, so the sum is written first); a tile that reads
        its own storage is updated in place (`update_in_place`). Values that read each other's storage
        in a cycle (a swap) are computed into temporaries before any of them is written.
        """
        todo = [(s, v) for s, v in zip(storages, values) if not (v.reads == frozenset([s.name]) and v.materialized)]
        while todo:
            free = next((k for k, (s, _) in enumerate(todo)
                         if not any(s.name in w.reads for j, (_, w) in enumerate(todo) if j != k)), None)
            if free is None:
                break
            s, v = todo.pop(free)
            if isinstance(s, n.Buffer) and s.name in v.reads and not v.materialized:
                self.update_in_place(s, v)
            else:
                self.write_storage(s, v)
        cycle = {s.name for s, _ in todo}
        staged = [(s, self.materialize(TVal(v.type, v.gen, v.cost, v.loads, v.reads), "carry") if v.reads & cycle else v)
                  for s, v in todo]
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
        self.if_storages.update(_branch_results_into_carries(body_block, storages, self.uses))
        self.consumed(*inits)
        iv = n.Var(self.fresh("iv"), iv_type.elem)
        inner = dict(env)
        inner[iv_name] = TVal(iv_type, lambda idx: iv, materialized=True)
        for (name, ty), s in zip(body_block.args[1:], storages):
            inner[name] = self.storage_value(ty, s)
        outer_stmts, loop_body = self.stmts, []
        self.stmts = loop_body
        outer_rereads = set(self.rereads)
        term = self.lower_block(body_block, inner)
        operands = term.operands if term is not None else []
        yielded = [inner[name] for name in operands]
        # Writing the carries changes tile storage only, never memory a load reads: the loads the
        # yielded tiles read stay lazy and are read inside the loops that write the carries.
        carried = frozenset(yielded).union(*(v.loads for v in yielded))
        self.flush(carried, carried)
        self.write_all(storages, yielded)
        self.consumed(*yielded)
        for name in operands:
            self.remaining[name] = self.remaining.get(name, 0) - 1
        self.rereads = [tv for tv in self.rereads if tv in outer_rereads]  # the body's lazy values end here
        self.stmts = outer_stmts
        self.emit(n.For(iv, lb, ub, step, loop_body))
        return [self.storage_value(ty, s) for (_, ty), s in zip(op.results, storages)]

    def op_if(self, op: Op, args: list, env: dict) -> list:
        self.flush()
        cond = args[0].scalar()
        given = self.if_storages.pop(id(op), {})
        storages = [given.get(j) or self.storage_for(ty, "ifv") for j, (_, ty) in enumerate(op.results)]
        branches = []
        outer_rereads = set(self.rereads)
        for region in op.regions:
            outer_stmts, body = self.stmts, []
            self.stmts = body
            inner = dict(env)
            term = self.lower_block(region, inner)
            yielded = [inner[name] for name in term.operands] if term is not None and storages else []
            # As at a loop's yield: writing the results' storage changes tiles, never memory, so what
            # the results read stays lazy until they are written.
            carried = frozenset(yielded).union(*(v.loads for v in yielded))
            self.flush(carried, carried)
            self.write_all(storages, yielded)
            self.consumed(*yielded)
            self.rereads = [tv for tv in self.rereads if tv in outer_rereads]  # the branch's lazy values end here
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


def _branch_results_into_carries(body: Block, storages: list, uses: dict) -> dict:
    """{id(scf.if op): {result index: carry storage}} for the ifs of a loop body whose result the body
    yields as a carried tile, where the carried value is used nowhere but inside that if.

    Such an if (`if row < n: acc += x`) can write its result straight into the carry's storage, so
    the loop does not copy the whole tile back into the carry at every iteration.
    """
    term = body.ops[-1] if body.ops else None
    if term is None or term.name != "scf.yield":
        return {}
    producers = {name: (op, j) for op in body.ops if op.name == "scf.if" for j, (name, _) in enumerate(op.results)}
    found: dict = {}
    for (arg, ty), storage, yielded in zip(body.args[1:], storages, term.operands):
        if not ty.shape or yielded not in producers:
            continue
        op, j = producers[yielded]
        chosen = found.setdefault(id(op), {})
        if j not in chosen and storage not in chosen.values() and uses.get(arg, 0) == _uses_within(op, arg):
            chosen[j] = storage
    return found


def _uses_within(op: Op, name: str) -> int:
    """Uses of `name` as an operand of `op` or of any op nested in its regions."""
    return op.operands.count(name) + sum(_uses_within(inner, name) for region in op.regions for inner in region.ops)
