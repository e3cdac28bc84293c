"""Lowering of control flow: loop-carried and branch results as storage, while loops, calls."""
from __future__ import annotations

import re

from tilebridge.frontends.triton.tiles import (
    TVal,
    linear_index,
)
from tilebridge.frontends.triton.ttir import Op, TType
from tilebridge.ir import nodes as n


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
