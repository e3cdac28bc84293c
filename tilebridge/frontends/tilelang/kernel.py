"""A compiled TileLang kernel: lowered, rendered, built and launched by tilebridge's shared core.

`compile(func, out_idx)` plays `tilelang.compile`: the PrimFunc is lowered to the loop IR, rendered by
the same C renderer as Triton kernels, built by the same toolchain (cached on disk by source), and the
returned `TileBridgeKernel` is called as a `JITKernel` is: with the input tensors only when `out_idx`
names outputs (they are allocated and returned), or with every tensor. A PrimFunc with several T.Kernel
scopes is several stages, each its own shared library, launched in order on the same arguments plus
the `T.alloc_global` scratch tensors allocated for the call.
"""
from __future__ import annotations

import ctypes

from tilebridge.codegen.c import render_kernel
from tilebridge.frontends.tilelang.exprs import UnsupportedConstruct, evaluate
from tilebridge.frontends.tilelang.lower import lower_prim_func
from tilebridge.ir.types import c_type, is_pointer
from tilebridge.runtime.launcher import KernelLaunchError, load_library
from tilebridge.toolchain.cache import atomic_write, cache_dir, digest
from tilebridge.toolchain.compiler import build_shared_library, toolchain_hash
from tilebridge.toolchain.debug import dump_stage, override_source

TORCH_DTYPES = {"float64": "float64", "float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
                "bool": "bool", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
                "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2", "uint8": "uint8", "uint16": "uint16",
                "uint32": "uint32"}


def build(source: str, name: str) -> bytes:
    """The shared library of `source`, from the on-disk cache when this toolchain built it before."""
    path = cache_dir() / "tilelang" / f"{digest(toolchain_hash(), source)[:40]}.so"
    if path.exists():
        return path.read_bytes()
    binary = build_shared_library(source, name)
    atomic_write(path, binary)
    return binary


def normalize_out_idx(out_idx, count: int) -> list[int]:
    if out_idx is None:
        return []
    indices = [out_idx] if isinstance(out_idx, int) else list(out_idx)
    for i in indices:
        if not -count <= i < count:
            raise ValueError(f"out_idx {i} is out of range for a kernel with {count} parameters")
    return sorted(i % count for i in indices)


class Stage:
    """One T.Kernel scope: its loop IR, C source, library and entry points."""

    def __init__(self, ir) -> None:
        self.ir, self.name = ir, ir.name
        self.source = override_source(self.name, "c") or render_kernel(ir)
        dump_stage(self.name, {"tbir": ir.to_text(), "c": self.source})
        self.library = load_library(build(self.source, self.name))
        self.entry = self.library.python_entry
        self.function = getattr(self.library, f"{self.name}_launch")
        self.function.restype = ctypes.c_int
        self.function.argtypes = [ctypes.c_int32] * 4 + [ctypes.c_void_p if is_pointer(p.dtype) else
                                                         getattr(ctypes, CTYPES[c_type(p.dtype)]) for p in ir.params]

    def launch(self, grid: list, threads: int, values: list) -> None:
        status = self.entry(*grid, threads, *values) if self.entry is not None else -1
        if status < 0:  # no CPython entry (built without Python's headers): the ctypes route
            status = self.function(*grid, threads, *[v.data_ptr() if hasattr(v, "data_ptr") else v for v in values])
        if status == 1:
            raise MemoryError(f"kernel {self.name}: could not allocate the per-thread tile arena")
        if status:
            raise AssertionError(f"device-side assertion failed in kernel {self.name}")


class TileBridgeKernel:
    """Callable like tilelang's `JITKernel`; `get_kernel_source()` returns the generated C."""

    def __init__(self, func, out_idx=None, num_threads: int = 0) -> None:
        self.prim_func = func
        irs, self.signature = lower_prim_func(func)
        self.stages = [Stage(ir) for ir in irs]
        self.ir, self.name = irs[0], irs[0].name
        self.source = "\n".join(stage.source for stage in self.stages)
        self.param_count = len(func.params)
        self.out_idx = normalize_out_idx(out_idx, self.param_count)
        for i in self.out_idx:
            if i not in self.signature.tensors:
                raise ValueError(f"out_idx {i} names parameter {func.params[i].name!r}, which is not a tensor")
        self.num_threads = num_threads

    # ---- what tilelang's JITKernel offers ----
    def get_kernel_source(self) -> str:
        return self.source

    def get_host_source(self) -> str:
        return self.source

    def get_ir(self) -> str:
        """The loop IR the C was rendered from."""
        return "\n".join(stage.ir.to_text() for stage in self.stages)

    @property
    def params(self) -> list:
        """tilelang's `KernelParam` of each parameter (dtype and shape), as `JITKernel.params`."""
        from tilelang.engine.param import KernelParam
        buffers = self.prim_func.buffer_map
        return [KernelParam.from_buffer(buffers[p]) if p in buffers else KernelParam.from_var(p) for p in self.prim_func.params]

    def get_profiler(self, tensor_supply_type=None):
        """tilelang's own Profiler (random inputs, `assert_allclose`, `do_bench`) driving this kernel."""
        from tilelang.profiler import Profiler
        from tilelang.utils.tensor import TensorSupplyType
        return Profiler(self.params, self.out_idx, tensor_supply_type or TensorSupplyType.Auto).with_default_adapter(self)

    # ---- launch ----
    def __call__(self, *args):
        import torch
        full = self.arguments(args)
        env = self.bind_symbols(full)
        for i in self.out_idx:
            if full[i] is None:
                dtype, shape, _ = self.signature.tensors[i]
                full[i] = torch.empty([evaluate(d, env) for d in shape], dtype=getattr(torch, TORCH_DTYPES[dtype]))
        self.check(full, env)
        scratch = [torch.empty([evaluate(d, env) for d in shape], dtype=getattr(torch, TORCH_DTYPES[dtype]))
                   for dtype, shape in self.signature.scratch]
        values = full + [env[symbol] for symbol, *_ in self.signature.symbols] + scratch
        threads = self.num_threads or torch.get_num_threads()
        for stage, grid in zip(self.stages, self.signature.grids):
            grid = [evaluate(g, env) if g is not None else 1 for g in grid]
            if all(g > 0 for g in grid):
                stage.launch(grid, threads, values)
        outputs = [full[i] for i in self.out_idx]
        return None if not outputs else outputs[0] if len(outputs) == 1 else outputs

    def arguments(self, args: tuple) -> list:
        """Every PrimFunc parameter in order; outputs that the caller left out are None until allocated."""
        if len(args) == self.param_count:
            return list(args)
        if len(args) != self.param_count - len(self.out_idx):
            raise TypeError(f"kernel {self.name} takes {self.param_count - len(self.out_idx)} inputs "
                            f"(or all {self.param_count} parameters), got {len(args)}")
        rest = iter(args)
        return [None if i in self.out_idx else next(rest) for i in range(self.param_count)]

    def bind_symbols(self, full: list) -> dict:
        """Values of the symbolic sizes (read from the tensors that carry them) and of the scalar arguments."""
        env = {}
        for symbol, index, kind, dim in self.signature.symbols:
            tensor = full[index]
            if tensor is not None:
                env.setdefault(symbol, int(tensor.shape[dim] if kind == "shape" else tensor.stride(dim)))
        for symbol, *_ in self.signature.symbols:
            if symbol not in env:
                raise KernelLaunchError(f"kernel {self.name}: symbolic size {symbol.name!r} is only carried by an output; "
                                        "pass the output tensor too")
        for index in self.signature.scalars:
            env[self.prim_func.params[index]] = full[index]
        return env

    def check(self, full: list, env: dict) -> None:
        """Refuse tensors whose device, dtype, shape or strides differ from the PrimFunc's buffers:
        the generated code addresses memory with those strides."""
        for index, (dtype, shape, strides) in self.signature.tensors.items():
            name, tensor = self.prim_func.params[index].name, full[index]
            if not hasattr(tensor, "data_ptr"):
                raise KernelLaunchError(f"argument {name!r} must be a tensor, got {type(tensor).__name__}")
            if tensor.device.type != "cpu":
                raise KernelLaunchError(f"argument {name!r} is on {tensor.device}; "
                                        "tilebridge runs TileLang kernels on CPU tensors")
            if str(tensor.dtype).removeprefix("torch.") != TORCH_DTYPES[dtype]:
                raise KernelLaunchError(f"argument {name!r} has dtype {tensor.dtype}, the kernel expects {dtype}")
            want = [evaluate(d, env) for d in shape]
            if list(tensor.shape) != want:
                raise KernelLaunchError(f"argument {name!r} has shape {list(tensor.shape)}, the kernel expects {want}")
            if strides is None:
                expected, running = [], 1
                for d in reversed(want):
                    expected.insert(0, running)
                    running *= d
            else:
                expected = [evaluate(s, env) for s in strides]
            actual = [tensor.stride(k) for k in range(tensor.dim())]
            if any(a != e for a, e, d in zip(actual, expected, want) if d > 1):
                raise KernelLaunchError(f"argument {name!r} has strides {actual}, the kernel expects {expected} "
                                        "(pass a .contiguous() tensor)")


CTYPES = {"float": "c_float", "double": "c_double", "_Bool": "c_bool", "int8_t": "c_int8", "int16_t": "c_int16",
          "int32_t": "c_int32", "int64_t": "c_int64", "uint16_t": "c_uint16"}


def compile(func, out_idx=None, execution_backend=None, target=None, target_host=None, verbose=None,
            pass_configs=None, compile_flags=None, num_threads: int = 0) -> TileBridgeKernel:
    """`tilelang.compile` for tilebridge: the same arguments (GPU-only ones are accepted and ignored)."""
    attrs = func.attrs
    if attrs is not None and "tilelang_out_idx" in attrs:
        if out_idx is not None:
            raise ValueError("Out index conflict: out_idx is specified and prim_func have returned `T.empty` tensors")
        out_idx = list(attrs["tilelang_out_idx"])
    try:
        return TileBridgeKernel(func, out_idx, num_threads)
    except UnsupportedConstruct as error:
        raise UnsupportedConstruct(f"{error}\n  in TileLang kernel {str(attrs['global_symbol']) if attrs else '?'}") from None
