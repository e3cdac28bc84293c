"""Per-thread emulation of SIMT-style TileLang kernels (`T.get_thread_binding`, `T.tvm_thread_allreduce`).

A tilebridge program runs a whole thread block on one CPU thread. Tile-style code (T.Parallel, T.copy,
T.gemm, ...) states what the block computes and needs no thread ids. Code that reads the thread
index runs once per thread, so it is wrapped in a loop over the block's thread ids: a *thread region*.

Where the loop over threads goes decides correctness. The GPU program is correct for every schedule of
its threads that respects its barriers: the explicit ones, and those tilelang's own synchronization
pass inserts between shared-memory accesses of different threads. Running the threads in lock-step
(all threads finish one step before any starts the next) is such a schedule, so the emulation keeps
block-level control flow (loops and conditions that do not depend on the thread) outside and puts the
thread loops inside, at the points where a barrier could stand:

- a statement that does not depend on the thread runs once, at block level;
- a dependent statement that contains no barrier and no shared-buffer exchange (a write of a block
  buffer that the same statement also reads) becomes one thread region, its loops inside;
- otherwise it is split: a sequence into groups without such an exchange, a uniform loop or
  condition into its body; a condition on the thread index becomes a per-thread predicate that
  guards every region of its branches; a thread-dependent value bound by a let lives in a per-thread
  buffer. A barrier under a loop whose trip count depends on the thread cannot be split: refused.

State private to a thread (`T.alloc_local`, `T.alloc_var`, scope `local` / `local.var`) is replicated
once per thread and indexed by the thread id. `tvm_thread_allreduce` (a reduction across threads with
a `T.comm_reducer`) is a collective: every thread's value is stored, then each thread folds those of
its group. Warp shuffles and other thread primitives are refused by name.
"""
from __future__ import annotations

from tilebridge.frontends.tilelang.exprs import UnsupportedConstruct, ir_dtype
from tilebridge.ir import nodes as n

I32 = "i32"
BARRIERS = ("tirx.tvm_storage_sync", "tl.sync_threads")
COLLECTIVES = ("tirx.tvm_thread_allreduce",)
THREAD_PRIMITIVES = ("tirx.tvm_warp_shuffle", "tirx.tvm_warp_shuffle_up", "tirx.tvm_warp_shuffle_down",
                     "tirx.tvm_warp_activemask", "tl.shfl_xor", "tl.shfl_down", "tl.shfl_up", "tl.shfl_sync",
                     "tl.warp_reduce_sum", "tl.warp_reduce_max", "tl.warp_reduce_min", "tl.any_sync", "tl.all_sync",
                     "tl.ballot_sync", "tl.ballot", "tl.activemask")
PRIVATE_SCOPES = ("local", "local.var")
BLOCK_SCOPES = ("shared", "shared.dyn", "local.fragment", "local.reducer")


def _visit(node, fn) -> None:
    from tvm.tirx.stmt_functor import post_order_visit
    post_order_visit(node, fn)


def _call_name(node) -> str:
    op = getattr(node, "op", None)
    return getattr(op, "name", "") if op is not None else ""


class ThreadLowering:
    """Mixed into the kernel lowering. State: `thread_dims` (TIR var → dimension), `thread_extents`,
    `private` (data vars of per-thread buffers), `private_lets` (TIR var → per-thread IR buffer),
    `thread_id` (the linear thread id inside a region, else None), `guards` (predicate buffers)."""

    # ---- analysis ----
    def uses_threads(self, stmt) -> bool:
        """Whether a block body needs the per-thread emulation at all."""
        found = []

        def visit(node):
            if (type(node).__name__ == "Var" and node in self.thread_dims) or _call_name(node) in COLLECTIVES:
                found.append(node)
        _visit(stmt, visit)
        return bool(found)

    def dependent(self, stmt) -> bool:
        """Whether `stmt` reads the thread index, per-thread state or a thread-dependent let."""
        if self.guards:
            return True
        found = []

        def visit(node):
            kind = type(node).__name__
            if kind == "Var" and (node in self.thread_dims or node in self.private or node in self.private_lets):
                found.append(node)
            elif kind in ("BufferLoad", "BufferStore") and node.buffer.data in self.private:
                found.append(node)
            elif _call_name(node) in COLLECTIVES:
                found.append(node)
        _visit(stmt, visit)
        return bool(found)

    def accesses(self, stmt) -> tuple[set, set, bool]:
        """(block buffers written, block buffers read, contains a barrier or collective). Block buffers are
        the program's shared and fragment buffers (not per-thread ones). Reads are over-approximated."""
        writes, reads, sync = set(), set(), []

        def visit(node):
            kind, name = type(node).__name__, _call_name(node)
            if name in THREAD_PRIMITIVES:
                raise UnsupportedConstruct(f"{name.replace('tirx.', 'T.').replace('tl.', 'T.')} (a warp-level thread "
                                           "primitive) is not supported by tilebridge's per-thread emulation")
            if name in BARRIERS or name in COLLECTIVES:
                sync.append(node)
            if kind == "BufferStore" and self.is_block_buffer(node.buffer):
                writes.add(node.buffer.data)
            elif kind == "BufferLoad" and self.is_block_buffer(node.buffer):
                reads.add(node.buffer.data)
            elif name == "tl.region" and int(node.args[1].value) & 2 and self.is_block_buffer(node.args[0].buffer):
                writes.add(node.args[0].buffer.data)
            elif name == "tl.access_ptr" and self.is_block_buffer(node.args[0].buffer):
                writes.add(node.args[0].buffer.data)
        _visit(stmt, visit)
        return writes, reads, bool(sync)

    def is_block_buffer(self, buffer) -> bool:
        return buffer.scope() in BLOCK_SCOPES and buffer.data not in self.private

    def needs_split(self, stmts: list) -> bool:
        """Whether running `stmts` thread after thread could differ from the GPU: a barrier or collective
        inside, or a block buffer written by one thread and read (or written) by another."""
        writes, reads = set(), set()
        for stmt in stmts:
            w, r, sync = self.accesses(stmt)
            if sync:
                return True
            writes |= w
            reads |= r
        return bool(writes & reads)

    def is_leaf(self, stmt) -> bool:
        """A single store or call other than a barrier or collective: one thread's step, never split."""
        kind = type(stmt).__name__
        return kind == "BufferStore" or (kind == "Evaluate" and _call_name(stmt.value) not in BARRIERS + COLLECTIVES)

    # ---- emission ----
    def simt_body(self, body) -> None:
        """Lower a thread block's body with per-thread emulation."""
        self.distribute(body)

    def distribute(self, stmt) -> None:
        if not self.dependent(stmt):
            self.stmt(stmt)
            return
        if not self.needs_split([stmt]) or self.is_leaf(stmt):
            self.thread_region(lambda: self.stmt(stmt))
            return
        handler = SPLITS.get(type(stmt).__name__)
        if handler is None:
            raise UnsupportedConstruct(f"a barrier or a shared-buffer exchange inside {type(stmt).__name__} that depends "
                                       f"on the thread index cannot be emulated per thread:\n{stmt}")
        handler(self, stmt)

    def split_seq(self, seq) -> None:
        group: list = []

        def flush():
            if group:
                members = list(group)
                self.thread_region(lambda: [self.stmt(s) for s in members])
                group.clear()
        for child in seq.seq:
            if type(child).__name__ == "Bind" or not self.dependent(child):
                flush()
                self.distribute_bind(child) if type(child).__name__ == "Bind" else self.stmt(child)
            elif self.needs_split([child]):
                flush()
                self.distribute(child)
            elif group and self.needs_split(group + [child]):
                flush()
                group.append(child)
            else:
                group.append(child)
        flush()

    def split_for(self, s) -> None:
        if self.dependent(s.min) or self.dependent(s.extent):
            raise UnsupportedConstruct("a barrier or shared-buffer exchange inside a loop whose trip count depends on "
                                       f"the thread index cannot be emulated per thread:\n{s}")
        if int(s.kind) == 1:
            raise UnsupportedConstruct(f"T.Parallel over per-thread state with a shared-buffer exchange inside:\n{s}")
        var = n.Var(self.fresh(s.loop_var.name), ir_dtype(s.loop_var.dtype))
        self.vars[s.loop_var] = var
        start, extent = self.expr(s.min), self.expr(s.extent)
        stop = extent if isinstance(start, n.Const) and start.value == 0 else n.Binary("add", start, extent, var.dtype)
        body = self.nested(lambda: self.distribute(s.body))
        self.emit(n.For(var, start, stop, n.Const(1, var.dtype), body))

    def split_if(self, s) -> None:
        if not self.dependent(s.condition):
            cond = self.expr(s.condition)
            then = self.nested(lambda: self.distribute(s.then_case))
            orelse = self.nested(lambda: self.distribute(s.else_case)) if s.else_case is not None else []
            self.emit(n.If(cond, then, orelse))
            return
        predicate = self.private_buffer("predicate", "i1")
        self.thread_region(lambda: self.emit(n.BufWrite(predicate, self.thread_id, self.expr(s.condition))))
        for branch, negate in ((s.then_case, False), (s.else_case, True)):
            if branch is not None:
                self.guards.append((predicate, negate))
                try:
                    self.distribute(branch)
                finally:
                    self.guards.pop()

    def distribute_bind(self, s) -> None:
        """A let: once at block level when uniform, else a per-thread buffer that regions read."""
        if not self.dependent(s.value):
            self.stmt_bind(s)
            return
        buffer = self.private_buffer(s.var.name, ir_dtype(s.var.dtype))
        self.thread_region(lambda: self.emit(n.BufWrite(buffer, self.thread_id, self.expr(s.value))))
        self.private_lets[s.var] = buffer
        if hasattr(s, "body"):
            self.distribute(s.body)

    def split_attr(self, s) -> None:
        if str(s.attr_key) == "reduce_scope" and type(s.body).__name__ == "Evaluate" and \
                _call_name(s.body.value) in COLLECTIVES:
            self.thread_allreduce(s.node, s.body.value)
            return
        self.distribute(s.body)

    def split_block(self, s) -> None:
        block = s.block if hasattr(s, "block") else s
        for buffer in block.alloc_buffers:
            self.local_buffer(buffer)
        self.distribute(block.body)

    def private_buffer(self, stem: str, dtype: str) -> n.Buffer:
        buffer = n.Buffer(self.fresh(stem), dtype, self.thread_count())
        self.buffers.append(buffer)
        return buffer

    def thread_count(self) -> int:
        x, y, z = self.thread_extents
        return x * y * z

    def thread_region(self, fn) -> None:
        """Emit `fn()`'s statements inside loops over every thread of the block (z, y, x; x innermost)."""
        loops, index = [], {}
        for dim in (2, 1, 0):
            extent = self.thread_extents[dim]
            if extent > 1:
                var = n.Var(self.fresh("t" + "xyz"[dim]), I32)
                loops.append((var, extent))
                index[dim] = var
            else:
                index[dim] = n.Const(0, I32)
        x, y, _ = self.thread_extents
        linear = n.Binary("add", n.Binary("mul", n.Binary("add", n.Binary("mul", index[2], n.Const(y, I32), I32),
                                                          index[1], I32), n.Const(x, I32), I32), index[0], I32)
        saved = self.thread_id, dict(self.vars)
        self.thread_id = linear
        for var, dim in self.thread_dims.items():
            self.vars[var] = index[dim]
        for var, buffer in self.private_lets.items():
            self.vars[var] = n.BufRead(buffer, linear)
        try:
            body = self.nested(fn)
        finally:
            self.thread_id, self.vars = saved
        for predicate, negate in reversed(self.guards):
            cond = n.BufRead(predicate, linear)
            body = [n.If(n.Unary("not", cond, "i1") if negate else cond, body)]
        for var, extent in reversed(loops):
            body = [n.For(var, n.Const(0, I32), n.Const(extent, I32), n.Const(1, I32), body)]
        self.stmts.extend(body)

    def thread_allreduce(self, reducer, call) -> None:
        """`tvm_thread_allreduce(count, value, cond, result, *thread_vars)`: each thread's `result` becomes the
        combination of `value` over the threads that differ from it only along the named thread dims."""
        count = int(call.args[0].value)
        if count != 1 or len(reducer.lhs) != 1:
            raise UnsupportedConstruct("tvm_thread_allreduce of several values at once is not supported")
        value, cond, result = call.args[1], call.args[2], call.args[3]
        axes = [self.thread_dims.get(v) for v in call.args[4:]]
        if any(a is None for a in axes):
            raise UnsupportedConstruct(f"tvm_thread_allreduce over something other than thread indices: {call}")
        dtype = ir_dtype(value.dtype)
        identity = self.expr(reducer.identity_element[0])
        values = self.private_buffer("allreduce", dtype)

        def store_value():
            v = self.expr(value)
            self.emit(n.BufWrite(values, self.thread_id, n.Select(self.expr(cond), v, identity, dtype)))
        self.thread_region(store_value)

        def fold():
            acc = n.Var(self.fresh("acc"), dtype)
            self.emit(n.Declare(acc, identity))
            index = {dim: self.vars[var] for var, dim in self.thread_dims.items()}
            loops = []
            for dim in axes:
                var = n.Var(self.fresh("r" + "xyz"[dim]), I32)
                loops.append((var, self.thread_extents[dim]))
                index[dim] = var
            x, y, _ = self.thread_extents
            other = n.Binary("add", n.Binary("mul", n.Binary("add", n.Binary("mul", index.get(2, n.Const(0, I32)),
                             n.Const(y, I32), I32), index.get(1, n.Const(0, I32)), I32), n.Const(x, I32), I32),
                             index.get(0, n.Const(0, I32)), I32)
            saved = dict(self.vars)
            self.vars[reducer.lhs[0]], self.vars[reducer.rhs[0]] = acc, n.BufRead(values, other)
            body = [n.Assign(acc, self.expr(reducer.result[0]))]
            self.vars = saved
            for var, extent in reversed(loops):
                body = [n.For(var, n.Const(0, I32), n.Const(extent, I32), n.Const(1, I32), body)]
            self.stmts.extend(body)
            self.emit(self.store(result.buffer, [self.expr(i) for i in result.indices], acc))
        self.thread_region(fold)


def thread_extents(block) -> list[int]:
    """The block's thread extents from `T.Kernel(..., threads=...)`; tilelang's SIMT default is 128."""
    annotation = block.annotations.get("tl.launch_threads") if block.annotations else None
    if annotation is None:
        return [128, 1, 1]
    extents = []
    for e in annotation:
        if type(e).__name__ != "IntImm":
            raise UnsupportedConstruct(f"a symbolic thread count {list(annotation)} is not supported with thread indices")
        extents.append(int(e.value))
    return (extents + [1, 1, 1])[:3]


SPLITS = {"SeqStmt": ThreadLowering.split_seq, "For": ThreadLowering.split_for, "IfThenElse": ThreadLowering.split_if,
          "Bind": ThreadLowering.distribute_bind, "LetStmt": ThreadLowering.distribute_bind,
          "AttrStmt": ThreadLowering.split_attr, "SBlockRealize": ThreadLowering.split_block,
          "SBlock": ThreadLowering.split_block}
