"""Kernels for the runtime tests."""
import triton
import triton.language as tl


@triton.jit
def scale_kernel(X, Out, n, factor, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(Out + offs, tl.load(X + offs, mask=mask) * factor, mask=mask)


@triton.jit
def constexpr_between_kernel(X, SCALE: tl.constexpr, Out, n, BLOCK: tl.constexpr):
    """A constexpr between runtime arguments: the launcher cannot take the runtime ones as a prefix."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(Out + offs, tl.load(X + offs, mask=mask) * SCALE, mask=mask)


@triton.autotune(
    configs=[
        triton.Config({"BLOCK": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK": 256, "waves_per_eu": 2, "matrix_instr_nonkdim": 16, "kpack": 2}, num_warps=8,
                      num_stages=0),
        triton.Config({"BLOCK": 128, "num_threads": 1}, num_warps=2, maxnreg=128),
    ],
    key=["n"],
)
@triton.jit
def autotuned_kernel(X, Out, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(Out + offs, tl.load(X + offs, mask=mask) + 1, mask=mask)


@triton.heuristics({"EVEN": lambda args: args["n"] % args["BLOCK"] == 0})
@triton.jit
def heuristic_kernel(X, Out, n, BLOCK: tl.constexpr, EVEN: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    if EVEN:
        tl.store(Out + offs, tl.load(X + offs) - 1)
    else:
        mask = offs < n
        tl.store(Out + offs, tl.load(X + offs, mask=mask) - 1, mask=mask)


@triton.jit
def inline_asm_kernel(X, Out, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    x = tl.load(X + offs)
    y = tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)
    tl.store(Out + offs, y)
