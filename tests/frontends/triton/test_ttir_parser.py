"""The TTIR text parser on hand-written modules in the form triton prints."""
import pytest

from tilebridge.frontends.triton.ttir import TTIRParseError, TType, parse_ttir, parse_type, split_top

MODULE = '''
#loc = loc("/src/kernel.py":3:0)
module {
  tt.func public @k(%x: !tt.ptr<f32> loc("x"(#loc)), %n: i32 loc("n"(#loc))) attributes {noinline = false} {
    %c0_i32 = arith.constant 0 : i32 loc(#loc1)
    %cst = arith.constant dense<0xFF800000> : tensor<128xf32> loc(#loc1)
    %r = tt.make_range {end = 128 : i32, start = 0 : i32} : tensor<128xi32> loc(#loc2)
    %m = arith.cmpi slt, %r, %r : tensor<128xi32> loc(#loc2)
    %p = tt.splat %x : !tt.ptr<f32> -> tensor<128x!tt.ptr<f32>> loc(#loc2)
    %v = tt.load %p, %m, %cst : tensor<128x!tt.ptr<f32>> loc(#loc2)
    %s = "tt.reduce"(%v) <{axis = 0 : i32}> ({
    ^bb0(%a: f32 loc(unknown), %b: f32 loc(unknown)):
      %t = arith.maxnumf %a, %b : f32 loc(#loc3)
      tt.reduce.return %t : f32 loc(#loc3)
    }) : (tensor<128xf32>) -> f32 loc(#loc3)
    %w:2 = scf.for %i = %c0_i32 to %n step %n iter_args(%acc = %s, %k = %c0_i32) -> (f32, i32)  : i32 {
      scf.yield %acc, %k : f32, i32 loc(#loc4)
    } loc(#loc4)
    %q = scf.while (%j = %c0_i32) : (i32) -> i32 {
      %c = arith.cmpi slt, %j, %n : i32 loc(#loc5)
      scf.condition(%c) %j : i32 loc(#loc5)
    } do {
    ^bb0(%j: i32 loc("j")):
      scf.yield %j : i32 loc(#loc5)
    } loc(#loc5)
    tt.return loc(#loc6)
  } loc(#loc)
} loc(#loc)
#loc1 = loc("/src/kernel.py":4:8)
#loc2 = loc("/src/kernel.py":5:8)
#loc3 = loc(callsite(#loc7 at #loc2))
#loc4 = loc("/src/kernel.py":7:4)
#loc5 = loc("/src/kernel.py":9:4)
#loc6 = loc("/src/kernel.py":10:4)
#loc7 = loc("/lib/standard.py":100:1)
'''


def test_types() -> None:
    assert parse_type("tensor<16x32x!tt.ptr<bf16>>") == TType((16, 32), "ptr<bf16>")
    assert parse_type("f8E4M3FN") == TType((), "f8e4m3")
    assert parse_type("!tt.ptr<i1>") == TType((), "ptr<i1>")
    with pytest.raises(TTIRParseError, match="unsupported TTIR type"):
        parse_type("vector<4xf32>")


def test_split_top_respects_brackets_and_strings() -> None:
    assert split_top('a, tensor<2x!tt.ptr<f32, 1>>, "x, y", (b, c)', ",") == ['a', ' tensor<2x!tt.ptr<f32, 1>>', ' "x, y"',
                                                                             ' (b, c)']


def test_module_structure_types_and_locations() -> None:
    module = parse_ttir(MODULE)
    fn = module.functions["k"]
    assert fn.public and [a for a, _ in fn.args] == ["%x", "%n"]
    ops = {op.name: op for op in fn.body.ops}
    assert ops["arith.cmpi"].keywords == ["slt"] and ops["arith.cmpi"].results[0][1] == TType((128,), "i1")
    assert ops["tt.load"].results[0][1] == TType((128,), "f32") and ops["tt.load"].operands == ["%p", "%m", "%cst"]
    reduce = ops["tt.reduce"]
    assert reduce.attrs["axis"] == 0 and reduce.results == [("%s", TType((), "f32"))]
    assert [name for name, _ in reduce.regions[0].args] == ["%a", "%b"]
    loop = ops["scf.for"]
    assert [name for name, _ in loop.results] == ["%w#0", "%w#1"]
    assert loop.operands == ["%c0_i32", "%n", "%n", "%s", "%c0_i32"]
    assert [name for name, _ in loop.regions[0].args] == ["%i", "%acc", "%k"]
    loop_while = ops["scf.while"]
    assert len(loop_while.regions) == 2 and loop_while.regions[1].args[0][0] == "%j"
    assert module.source_line(ops["tt.make_range"].loc) == ("/src/kernel.py", 5)
    assert module.source_line(reduce.loc) == ("/lib/standard.py", 100)  # the callee frame of a callsite


def test_early_return_blocks_and_quoted_callee() -> None:
    text = '''
module {
  tt.func private @"pkg.helper__fp32"(%x: f32) -> (f32, f32) attributes {noinline = true} {
    %c = arith.constant 0.000000e+00 : f32
    %p = arith.cmpf ogt, %x, %c : f32
    cf.cond_br %p, ^bb1, ^bb2(%c : f32)
  ^bb1:  // pred: ^bb0
    tt.return %x, %x : f32, f32
  ^bb2(%y: f32):  // pred: ^bb0
    tt.return %y, %x : f32, f32
  }
}
'''
    fn = parse_ttir(text).functions["pkg.helper__fp32"]
    assert not fn.public and fn.result_types == [TType((), "f32")] * 2
    branch = fn.body.ops[-1]
    assert branch.attrs["targets"] == [("bb1", []), ("bb2", ["%c"])] and branch.operands == ["%p", "%c"]
    assert [b.label for b in fn.body.successors] == ["bb1", "bb2"]
    assert fn.body.successors[1].args == [("%y", TType((), "f32"))]
