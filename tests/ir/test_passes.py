"""The loop-IR passes on hand-built kernels: what they rewrite, and that they leave the rest alone."""
from tilebridge.codegen.c import render_kernel
from tilebridge.ir import nodes as n
from tilebridge.ir.passes import fuse_loops, masks_to_bounds, optimize, widen_addresses

I32 = "i32"
i = n.Var("i", I32)
off = n.Var("off", I32)
limit = n.Var("limit", I32)
ptr = n.Var("p", "ptr<f32>")


def c(v: int) -> n.Const:
    return n.Const(v, I32)


def masked_store_loop(cond) -> n.For:
    addr = n.Binary("ptradd", ptr, n.Binary("add", off, i, I32), "ptr<f32>")
    return n.For(i, c(0), c(256), c(1), [n.If(cond, [n.MemWrite(addr, n.Const(1.0, "f32"))])], vectorize=True)


def test_affine_guard_becomes_the_loop_range() -> None:
    guard = n.Binary("lt", n.Binary("add", off, i, I32), limit, "i1")
    (loop,) = masks_to_bounds([masked_store_loop(guard)])
    assert isinstance(loop, n.For) and isinstance(loop.body[0], n.MemWrite)  # no mask left in the body
    assert "limit" in render_kernel(n.Kernel("k", [off, limit, ptr], [], [loop]))


def test_invariant_conjunct_is_hoisted_around_the_loop() -> None:
    guard = n.Binary("and", n.Binary("lt", off, limit, "i1"),
                     n.Binary("ge", n.Binary("add", i, off, I32), c(3), "i1"), "i1")
    (outer,) = masks_to_bounds([masked_store_loop(guard)])
    assert isinstance(outer, n.If) and outer.cond == n.Binary("lt", off, limit, "i1")
    assert isinstance(outer.then[0], n.For) and isinstance(outer.then[0].body[0], n.MemWrite)


def test_non_affine_guard_is_left_alone() -> None:
    guard = n.Binary("lt", n.Binary("mul", i, i, I32), limit, "i1")
    loop = masked_store_loop(guard)
    assert masks_to_bounds([loop]) == [loop]


def test_masked_tile_load_splits_into_inside_and_outside_ranges() -> None:
    buf = n.Buffer("t", "f32", 256)
    cond = n.Binary("lt", n.Binary("add", off, i, I32), limit, "i1")
    value = n.Select(cond, n.MemRead(n.Binary("ptradd", ptr, i, "ptr<f32>"), "f32"), n.Const(0.0, "f32"), "f32")
    loops = masks_to_bounds([n.For(i, c(0), c(256), c(1), [n.BufWrite(buf, i, value)], vectorize=True)])
    assert len(loops) == 2
    assert isinstance(loops[0].body[0].value, n.MemRead)  # where the mask holds: a plain load
    assert loops[1].body[0].value == n.Const(0.0, "f32")  # past the end: the `other` value


def test_a_select_on_data_stays_while_the_mask_splits_the_range() -> None:
    """`where(m == -inf, 0, m)` beside a masked load (online softmax): the mask becomes the ranges,
    the select on loaded data stays in each part."""
    buf, other = n.Buffer("t", "f32", 256), n.Buffer("m", "f32", 256)
    cond = n.Binary("lt", n.Binary("add", off, i, I32), limit, "i1")
    load = n.Select(cond, n.MemRead(n.Binary("ptradd", ptr, i, "ptr<f32>"), "f32"), n.Const(0.0, "f32"), "f32")
    m = n.BufRead(other, i)
    on_data = n.Binary("eq", m, n.Const(float("-inf"), "f32"), "i1")
    value = n.Binary("add", load, n.Select(on_data, n.Const(0.0, "f32"), m, "f32"), "f32")
    loops = masks_to_bounds([n.For(i, c(0), c(256), c(1), [n.BufWrite(buf, i, value)], vectorize=True)])
    assert len(loops) == 2
    inside, outside = (loop.body[0].value for loop in loops)
    assert isinstance(inside.a, n.MemRead) and outside.a == n.Const(0.0, "f32")
    assert inside.b.cond == on_data and outside.b.cond == on_data


def test_row_mask_of_a_tile_selects_one_of_two_loops() -> None:
    """A select whose condition does not depend on the loop (a 2-D tile's row mask) splits the loop
    into a guarded plain-load loop and a loop of `other` values."""
    buf = n.Buffer("t", "f32", 256)
    row_ok = n.Binary("lt", off, limit, "i1")
    value = n.Select(row_ok, n.MemRead(n.Binary("ptradd", ptr, i, "ptr<f32>"), "f32"), n.Const(0.0, "f32"), "f32")
    (branch,) = masks_to_bounds([n.For(i, c(0), c(256), c(1), [n.BufWrite(buf, i, value)], vectorize=True)])
    assert isinstance(branch, n.If) and branch.cond == row_ok
    assert isinstance(branch.then[0].body[0].value, n.MemRead)
    assert branch.orelse[0].body[0].value == n.Const(0.0, "f32")


def test_a_mask_splits_the_range_beside_a_select_on_an_invariant() -> None:
    """A masked load whose `other` is itself a select on the row mask (`other=first`, the row's
    first element where the row exists): the bound condition still splits the range, and the row
    mask, an invariant, picks one of two loop sets."""
    buf = n.Buffer("t", "f32", 256)
    row_ok = n.Binary("lt", off, limit, "i1")
    in_row = n.Binary("and", n.Binary("lt", i, limit, "i1"), row_ok, "i1")
    first = n.Select(row_ok, n.MemRead(ptr, "f32"), n.Const(0.0, "f32"), "f32")
    value = n.Select(in_row, n.MemRead(n.Binary("ptradd", ptr, i, "ptr<f32>"), "f32"), first, "f32")
    (branch,) = masks_to_bounds([n.For(i, c(0), c(256), c(1), [n.BufWrite(buf, i, value)], vectorize=True)])
    assert isinstance(branch, n.If) and branch.cond == row_ok
    inside, past_end = branch.then
    assert isinstance(inside.body[0].value, n.MemRead)
    assert "limit" in render_kernel(n.Kernel("k", [off, limit, ptr], [], [branch]))
    assert past_end.body[0].value == first  # `other` as the load gave it, a select the C compiler hoists


def test_a_row_folded_in_chunks_splits_its_full_chunks_under_a_row_mask() -> None:
    """A reduction folding a row in chunks of 64 lanes (`for r in [64, n) step 64: for j in [0, 64)`),
    masked by the row's length and by an invariant row mask: the chunks wholly inside the row run a
    constant-length inner loop whose only select is the row mask's (then split as a row mask is)."""
    lanes, r, j = n.Buffer("lanes", "f32", 64), n.Var("r", I32), n.Var("j", I32)
    row_ok = n.Binary("lt", off, limit, "i1")
    at = n.Binary("add", r, j, I32)
    mask = n.Binary("and", n.Binary("lt", at, limit, "i1"), row_ok, "i1")
    load = n.Select(mask, n.MemRead(n.Binary("ptradd", ptr, at, "ptr<f32>"), "f32"), n.Const(0.0, "f32"), "f32")
    fold = n.BufWrite(lanes, j, n.Binary("add", n.BufRead(lanes, j), load, "f32"))
    loop = n.For(r, c(64), c(1024), c(64), [n.For(j, c(0), c(64), c(1), [fold], vectorize=True)])
    full, rest = masks_to_bounds([loop])
    assert isinstance(full, n.For) and isinstance(rest, n.For) and full.stop != loop.stop
    (branch,) = full.body
    assert isinstance(branch, n.If) and branch.cond == row_ok
    (inner,) = branch.then
    assert inner.stop == c(64) and isinstance(inner.body[0].value.b, n.MemRead)


def test_condition_on_a_value_of_the_loop_body_stays_inside() -> None:
    """`f` is declared in the body: a condition on it is not invariant and must not leave the loop."""
    buf, f = n.Buffer("t", "f32", 256), n.Var("f", "f32")
    read = n.MemRead(n.Binary("ptradd", ptr, i, "ptr<f32>"), "f32")
    positive = n.Binary("gt", f, n.Const(0.0, "f32"), "i1")
    loop = n.For(i, c(0), c(256), c(1), [n.Declare(f, read),
                                         n.BufWrite(buf, i, n.Select(positive, f, n.Const(0.0, "f32"), "f32"))])
    assert masks_to_bounds([loop]) == [loop]


def test_address_offsets_are_computed_in_64_bits() -> None:
    addr = n.Binary("ptradd", ptr, n.Binary("add", off, i, I32), "ptr<f32>")
    (stmt,) = widen_addresses([n.MemWrite(addr, n.Const(0.0, "f32"))])
    assert stmt.pointer.b.dtype == "i64"
    kernel = optimize(n.Kernel("k", [off, ptr], [], [n.MemWrite(addr, n.Const(0.0, "f32"))]))
    assert "(int64_t)off" in render_kernel(kernel)


def element_loop(var: n.Var, *writes: n.BufWrite) -> n.For:
    return n.For(var, c(0), c(256), c(1), list(writes), vectorize=True)


def test_loops_over_the_same_loads_fuse_when_each_element_only_meets_its_own() -> None:
    """max, then the rescaled sum reading that max and the old carry, then the carry update: one loop."""
    j = n.Var("j", I32)
    new_max, carry, total = (n.Buffer(name, "f32", 256) for name in ("new_max", "carry", "total"))
    x_at = lambda v: n.MemRead(n.Binary("ptradd", ptr, v, "ptr<f32>"), "f32")  # noqa: E731
    first = element_loop(i, n.BufWrite(new_max, i, n.Binary("max", n.BufRead(carry, i), x_at(i), "f32")))
    second = element_loop(j, n.BufWrite(total, j, n.Binary("add", n.BufRead(new_max, j), x_at(j), "f32")),
                          n.BufWrite(carry, j, n.BufRead(new_max, j)))
    (fused,) = fuse_loops([first, second])
    assert [type(s) for s in fused.body] == [n.BufWrite] * 3 and fused.var == i
    assert fused.body[1].value == n.Binary("add", n.BufRead(new_max, i), x_at(i), "f32")  # j renamed to i


def test_loops_stay_apart_when_fusing_would_change_what_they_read() -> None:
    j = n.Var("j", I32)
    a, b = n.Buffer("a", "f32", 257), n.Buffer("b", "f32", 256)
    x_at = lambda v: n.MemRead(n.Binary("ptradd", ptr, v, "ptr<f32>"), "f32")  # noqa: E731
    writes_a = element_loop(i, n.BufWrite(a, i, x_at(i)))
    shifted = element_loop(j, n.BufWrite(b, j, n.Binary("add", n.BufRead(a, n.Binary("add", j, c(1), I32)), x_at(j), "f32")))
    assert fuse_loops([writes_a, shifted]) == [writes_a, shifted]  # b[j] reads a[j + 1]: not written yet when fused
    no_shared_load = element_loop(j, n.BufWrite(b, j, n.Binary("mul", n.BufRead(a, j), n.BufRead(a, j), "f32")))
    assert fuse_loops([writes_a, no_shared_load]) == [writes_a, no_shared_load]  # nothing loaded twice: no gain
    shorter = n.For(j, c(0), c(128), c(1), [n.BufWrite(b, j, x_at(j))], vectorize=True)
    assert fuse_loops([writes_a, shorter]) == [writes_a, shorter]


def reduction(lanes: n.Buffer, outer: n.Var, inner: n.Var, term) -> n.For:
    """`for o in range(0, 1024, 64): for k in range(64): lanes[k] += term(o + k)`, as sums lower."""
    at = n.Binary("add", outer, inner, I32)
    update = n.BufWrite(lanes, inner, n.Binary("add", n.BufRead(lanes, inner), term(at), "f32"))
    return n.For(outer, c(0), c(1024), c(64), [n.For(inner, c(0), c(64), c(1), [update], vectorize=True)])


def test_two_reductions_of_one_block_become_one_pass_across_the_first_ones_tail() -> None:
    x_at = lambda v: n.MemRead(n.Binary("ptradd", ptr, v, "ptr<f32>"), "f32")  # noqa: E731
    first_lanes, second_lanes, scaled = n.Buffer("l1", "f32", 64), n.Buffer("l2", "f32", 64), n.Buffer("s", "f32", 1024)
    o1, o2, k1, k2 = (n.Var(name, I32) for name in ("o1", "o2", "k1", "k2"))
    total = n.Var("total", "f32")
    first = reduction(first_lanes, o1, k1, x_at)
    tail = n.Declare(total, n.BufRead(first_lanes, c(0)))  # the first sum's scalar result: the second does not read it
    second = reduction(second_lanes, o2, k2, lambda at: n.Binary("mul", x_at(at), n.BufRead(scaled, at), "f32"))
    fused, kept = fuse_loops([first, tail, second])
    assert kept == tail and fused.var == o1 and len(fused.body) == 1  # one outer loop, one element loop
    assert [s.buffer.name for s in fused.body[0].body] == ["l1", "l2"]

    reads_total = reduction(second_lanes, o2, k2, lambda at: n.Binary("mul", x_at(at), total, "f32"))
    assert fuse_loops([first, tail, reads_total]) == [first, tail, reads_total]  # needs the first sum: stays after it
    into_first = reduction(first_lanes, o2, k2, x_at)
    assert fuse_loops([first, into_first]) == [first, into_first]  # both add into l1: not independent
    store = n.MemWrite(n.Binary("ptradd", ptr, c(0), "ptr<f32>"), n.Const(0.0, "f32"))
    assert fuse_loops([first, store, second]) == [first, store, second]  # a load never moves above a store


def test_tile_updates_join_a_guarded_store_loop_which_stays_streamable() -> None:
    from tilebridge.ir.passes import contiguous_store

    j = n.Var("j", I32)
    x_hat, dw = n.Buffer("x_hat", "f32", 256), n.Buffer("dw", "f32", 256)
    addr = n.Binary("ptradd", ptr, n.Binary("add", off, i, I32), "ptr<f32>")
    guard = n.Binary("lt", i, limit, "i1")
    store = n.For(i, c(0), c(256), c(1), [n.If(guard, [n.MemWrite(addr, n.BufRead(x_hat, i))])], vectorize=True)
    update = element_loop(j, n.BufWrite(dw, j, n.Binary("add", n.BufRead(dw, j), n.BufRead(x_hat, j), "f32")))
    (fused,) = fuse_loops([store, update])
    assert isinstance(fused.body[0], n.BufWrite) and isinstance(fused.body[-1], n.If)  # the store stays last
    inside, outside = masks_to_bounds([fused])
    assert contiguous_store(inside) is not None and isinstance(inside.body[0], n.BufWrite)
    assert [type(s) for s in outside.body] == [n.BufWrite]  # past the mask only the update runs

    x_at = n.MemRead(n.Binary("ptradd", ptr, j, "ptr<f32>"), "f32")
    loading = element_loop(j, n.BufWrite(dw, j, n.Binary("add", x_at, n.BufRead(x_hat, j), "f32")))
    assert fuse_loops([store, loading]) == [store, loading]  # a load beside a store could see it: apart
    writes_read_tile = element_loop(j, n.BufWrite(x_hat, j, n.Const(0.0, "f32")))
    assert fuse_loops([store, writes_read_tile]) == [store, writes_read_tile]


def test_a_loop_reading_a_tile_never_moves_above_the_routine_that_writes_it() -> None:
    j = n.Var("j", I32)
    tile, product, total = n.Buffer("tile", "f32", 256), n.Buffer("product", "f32", 256), n.Buffer("total", "f32", 256)
    addr = n.Binary("ptradd", ptr, i, "ptr<f32>")
    store = n.For(i, c(0), c(256), c(1), [n.MemWrite(addr, n.BufRead(tile, i))], vectorize=True)
    dot = n.Intrinsic("tb_dot_f32", (c(16), c(16), c(16), tile, tile, product))
    update = element_loop(j, n.BufWrite(total, j, n.Binary("add", n.BufRead(product, j), n.BufRead(tile, j), "f32")))
    assert fuse_loops([store, dot, update]) == [store, dot, update]  # the update needs the dot's product
    old = n.Var("old", "f32")
    atomic = n.Atomic("fadd", ptr, n.Const(1.0, "f32"), result=old)
    reads_old = element_loop(j, n.BufWrite(total, j, n.Binary("add", old, n.BufRead(tile, j), "f32")))
    assert fuse_loops([store, atomic, reads_old]) == [store, atomic, reads_old]
    assert len(fuse_loops([store, update])) == 1  # with nothing between, they do fuse
