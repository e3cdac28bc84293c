"""The TileLang frontend: tilelang 0.1.15's own frontend builds the tile-level TIR; tilebridge lowers it
to its loop IR and runs it through the same C renderer, toolchain and launcher as Triton kernels.

Use it without editing a kernel, in one of three ways:

    import tilebridge.frontends.tilelang as tilebridge_tilelang

    kernel = tilebridge_tilelang.compile(func, out_idx=[-1])     # 1. directly, like tilelang.compile

    kernel = tilelang.compile(func, out_idx=[-1], target="tilebridge")   # 2. a target name (also "cpu")
    @tilelang.jit(out_idx=[-1], target="tilebridge")

    tilebridge_tilelang.activate()                                # 3. every kernel whose target is unset/"auto"
    kernel = tilelang.compile(func, out_idx=[-1])

    c = kernel(a, b)              # CPU tensors in, outputs (out_idx) allocated and returned
    print(kernel.get_kernel_source())   # the generated C

The hook. tilelang 0.1.15 does have a backend registry (`tilelang.backend.module.register_backend`), but a
backend there must supply a TVM pass pipeline, a TVM device codegen and one of tilelang's execution
backends (tvm_ffi, cython, ...), whose adapters are dispatched inside tilelang's JIT layer; the `c`
target kind is owned by its built-in CPU backend. tilebridge needs none of that machinery: it takes the
frontend's tile TIR and does everything after it itself. So the seam is the one function both entries go
through: `tilelang.compile`, which `tilelang.jit`'s `JITImpl.compile` calls as `tilelang.jit.compile`.
Importing this package wraps that function (and `tilelang.compile`) once; the wrapper sends a kernel to
tilebridge when its target is "tilebridge" or "cpu" (names tilelang itself rejects), or unset/"auto"
after `activate()`, and passes every other call to tilelang unchanged. `deactivate()` turns the default
routing off again. Nothing of tilelang is edited or copied. tilelang's `do_bench` is wrapped the same way, so
GPU timing backends ("cupti", "event", ...) fall back to its host wall clock where CUDA is absent
(`profiler.py`).
"""
from __future__ import annotations

from tilebridge.frontends.tilelang.exprs import UnsupportedConstruct
from tilebridge.frontends.tilelang.kernel import TileBridgeKernel, compile
from tilebridge.frontends.tilelang.lower import lower_prim_func
from tilebridge.frontends.tilelang.profiler import install as install_profiler

__all__ = ["TileBridgeKernel", "UnsupportedConstruct", "activate", "compile", "deactivate", "lower_prim_func"]

TARGETS = ("tilebridge", "cpu")  # target names that always mean tilebridge
_state = {"default": False, "original": None}


def _routes_here(target) -> bool:
    if isinstance(target, str):
        return target in TARGETS or (_state["default"] and target == "auto")
    return target is None and _state["default"]


def _install() -> None:
    """Wrap `tilelang.compile` (and the `tilelang.jit.compile` that `@tilelang.jit` calls) once."""
    import importlib

    import tilelang
    jit = importlib.import_module("tilelang.jit")  # the module: the attribute `tilelang.jit` is the decorator
    if _state["original"] is not None:
        return
    original = _state["original"] = jit.compile

    def compile_(func=None, out_idx=None, execution_backend=None, target=None, target_host=None, verbose=None,
                 pass_configs=None, compile_flags=None):
        if _routes_here(target):
            return compile(func, out_idx=out_idx)
        return original(func, out_idx=out_idx, execution_backend=execution_backend, target=target,
                        target_host=target_host, verbose=verbose, pass_configs=pass_configs, compile_flags=compile_flags)

    compile_.__wrapped__ = original
    compile_.__doc__ = original.__doc__
    jit.compile = compile_
    tilelang.compile = compile_
    install_profiler()


def activate() -> None:
    """Run every TileLang kernel compiled without an explicit target (or with "auto") through tilebridge."""
    _install()
    _state["default"] = True


def deactivate() -> None:
    """Give kernels without an explicit target back to tilelang's own target detection."""
    _state["default"] = False


try:
    _install()
except ImportError:  # tilelang absent: the direct `compile` still needs it to build PrimFuncs, not to lower them
    pass
