"""Loading kernel libraries and launching them over a grid from Python.

The hot path is one ctypes call: arguments are converted by a per-kernel list of small functions
built once (tensor → data pointer, after a device check), the grid and the thread count go first.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import threading

from tilebridge.ir.types import SIGNATURE_TYPES
from tilebridge.toolchain.cache import put_bytes

_CTYPES = {"i1": ctypes.c_bool, "i8": ctypes.c_int8, "i16": ctypes.c_int16, "i32": ctypes.c_int32,
           "i64": ctypes.c_int64, "u1": ctypes.c_bool, "u8": ctypes.c_uint8, "u16": ctypes.c_uint16,
           "u32": ctypes.c_uint32, "u64": ctypes.c_uint64, "fp32": ctypes.c_float, "f32": ctypes.c_float,
           "fp64": ctypes.c_double, "fp16": ctypes.c_float, "bf16": ctypes.c_float}

_libraries: dict[str, ctypes.CDLL] = {}
_lock = threading.Lock()


class KernelLaunchError(RuntimeError):
    pass


def load_library(binary: bytes) -> ctypes.CDLL:
    """dlopen a kernel library from its bytes (stored once under its content hash)."""
    path = str(put_bytes(binary, ".so"))
    with _lock:
        lib = _libraries.get(path)
        if lib is None:
            lib = _libraries[path] = ctypes.CDLL(path)
            lib.python_entry = _python_entry(lib, path)
    return lib


def _python_entry(lib: ctypes.CDLL, path: str):
    """The library's CPython `launch` function, or None where it was built without Python's headers."""
    if not hasattr(lib, "PyInit_tb_kernel"):
        return None
    loader = importlib.machinery.ExtensionFileLoader("tb_kernel", path)
    spec = importlib.util.spec_from_file_location("tb_kernel", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.launch


def _flatten(signature, out: list) -> list:
    if isinstance(signature, (tuple, list)):
        for s in signature:
            _flatten(s, out)
    else:
        out.append(signature)
    return out


def _flatten_args(args, out: list) -> list:
    for a in args:
        if isinstance(a, tuple):
            _flatten_args(a, out)
        else:
            out.append(a)
    return out


def _pointer(name: str):
    def convert(value):
        try:
            if value.is_cpu:  # a torch tensor on the CPU: the common case, kept fast
                return value.data_ptr()
        except AttributeError:
            if value is None:
                return None
            if isinstance(value, int):
                return value
            if hasattr(value, "data_ptr"):
                return value.data_ptr()
            raise KernelLaunchError(f"argument {name!r} must be a tensor (an object with data_ptr()), "
                                    f"got {type(value).__name__}") from None
        raise KernelLaunchError(f"argument {name!r} is a tensor on {value.device}; tilebridge runs kernels on CPU "
                                "tensors (move it with .cpu(), or use the GPU driver for GPU tensors)")
    return convert


def _scalar(name: str, ty: str):
    kind = float if ty.startswith(("fp", "bf", "f")) else int

    def convert(value):
        if isinstance(value, bool) or isinstance(value, (int, float)):
            return kind(value)
        if hasattr(value, "item"):
            return kind(value.item())
        raise KernelLaunchError(f"argument {name!r} must be a {ty} scalar, got {type(value).__name__}")
    return convert


class Launcher:
    """Created by triton once per compiled kernel; called on every launch."""

    def __init__(self, src, metadata) -> None:
        fn = getattr(src, "fn", None)
        arg_names = list(fn.arg_names) if fn is not None else [f"arg{i}" for i in range(len(src.signature))]
        signature = src.signature
        flat_types, flat_names = [], []
        for i, name in enumerate(arg_names):
            ty = signature[name] if isinstance(signature, dict) and name in signature else signature[i]
            leaves = _flatten(ty, [])
            flat_types += leaves
            flat_names += [name] * len(leaves)
        self.keep = [ty != "constexpr" for ty in flat_types]
        # Where the constexprs all come last (the usual signature), the runtime arguments are a slice
        # of the launch's arguments: no per-launch comprehension (its frame costs microseconds cold).
        runtime = sum(self.keep)
        self.runtime_args = slice(0, runtime) if all(self.keep[:runtime]) else None
        self.has_tuples = any(isinstance(signature[name] if isinstance(signature, dict) else signature[i], tuple)
                              for i, name in enumerate(arg_names))
        self.converters, argtypes = [], [ctypes.c_int32] * 4
        for ty, name, keep in zip(flat_types, flat_names, self.keep):
            if not keep:
                continue
            if isinstance(ty, str) and ty.startswith("tensordesc"):
                raise KernelLaunchError(f"argument {name!r}: tensor descriptors are not supported on the CPU yet")
            if ty.startswith("*"):
                self.converters.append(_pointer(name))
                argtypes.append(ctypes.c_void_p)
            else:
                if ty not in _CTYPES and ty not in SIGNATURE_TYPES:
                    raise KernelLaunchError(f"argument {name!r} has an unsupported type {ty!r}")
                self.converters.append(_scalar(name, ty))
                argtypes.append(_CTYPES.get(ty, ctypes.c_int64))
        self.name = metadata.name
        self.num_threads = getattr(metadata, "num_threads", 0) or 0
        self.function = None
        self.entry = None
        self.threads = None  # torch.get_num_threads, bound with the library
        self.argtypes = argtypes

    def bind(self, library: ctypes.CDLL):
        function = getattr(library, f"{self.name}_launch")
        function.argtypes = self.argtypes
        function.restype = ctypes.c_int
        self.library = library
        self.entry = getattr(library, "python_entry", None)
        import torch  # at a kernel's first launch, not when tilebridge is imported
        self.threads = torch.get_num_threads  # asked at every launch: it may change between launches
        self.function = function
        return function

    def __call__(self, gridX, gridY, gridZ, stream, function, packed_metadata, launch_metadata,
                 enter_hook, exit_hook, *args):
        fn = self.function if self.function is not None else self.bind(function)
        if self.has_tuples:
            args = _flatten_args(args, [])
        if enter_hook is not None:
            enter_hook(launch_metadata)
        if gridX * gridY * gridZ > 0:
            threads = self.num_threads or self.threads()
            values = args[self.runtime_args] if self.runtime_args is not None else [a for a, k in zip(args, self.keep) if k]
            status = self.entry(gridX, gridY, gridZ, threads, *values) if self.entry is not None else -1
            if status < 0:
                # No C entry, or it met an argument it does not take directly (a wrapper object with
                # data_ptr(), a tensor elsewhere than the CPU): convert in Python, which explains refusals.
                status = fn(gridX, gridY, gridZ, threads, *[convert(a) for convert, a in zip(self.converters, values)])
            if status:
                self.raise_status(status)
        if exit_hook is not None:
            exit_hook(launch_metadata)

    def raise_status(self, status: int) -> None:
        if status == 1:
            raise MemoryError(f"kernel {self.name}: could not allocate the per-thread tile arena")
        buf = ctypes.create_string_buffer(512)
        self.library.tb_take_assert(buf, 512)
        raise AssertionError(f"device-side assertion failed in kernel {self.name}: {buf.value.decode()}")
