"""The system C compiler: found once, asked for its version, and used to build kernel libraries.

Flags: `-O3 -march=native` for the host ISA, `-fopenmp` so kernels share PyTorch's OpenMP runtime,
`-fwrapv` because Triton integers wrap, `-fno-math-errno` so math calls vectorize, and libmvec
(`-lmvec`) for glibc's vector math. Full fast-math is not used: it would change NaN and infinity
semantics that Triton programs observe.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from tilebridge.toolchain.cache import cache_dir, digest

CFLAGS = ["-O3", "-march=native", "-fPIC", "-shared", "-fopenmp", "-fwrapv", "-fno-math-errno",
          "-fno-trapping-math", "-fno-semantic-interposition", "-std=gnu11", "-w"]
LIBS = ["-lmvec", "-lm"]


@functools.cache
def python_include() -> str | None:
    """Python's headers, for the kernels' CPython launch entry; without them launches go through ctypes."""
    path = sysconfig.get_paths().get("include")
    return path if path and os.path.exists(os.path.join(path, "Python.h")) else None


def cflags() -> list[str]:
    """The flags in force: TILEBRIDGE_CHECK_ARENA=1 adds the tile-arena overflow check."""
    flags = CFLAGS + (["-DTB_CHECK_ARENA"] if os.environ.get("TILEBRIDGE_CHECK_ARENA") == "1" else [])
    if python_include() is not None:
        flags += ["-DTB_PYTHON", "-I", python_include()]
    return flags


class CompilerNotFound(RuntimeError):
    pass


class CompileError(RuntimeError):
    pass


@functools.cache
def find_c_compiler() -> str:
    candidates = [os.environ.get("TILEBRIDGE_CC"), os.environ.get("CC"), "gcc", "cc", "clang"]
    for name in filter(None, candidates):
        path = shutil.which(name)
        if path:
            return path
    raise CompilerNotFound("tilebridge needs a C compiler with OpenMP to build kernels; looked for "
                           f"{', '.join(c for c in candidates if c)} on PATH (TILEBRIDGE_CC or CC may name one). "
                           "Install one, e.g. `apt-get install gcc` or `conda install gcc`.")


@functools.cache
def compiler_version() -> str:
    out = subprocess.run([find_c_compiler(), "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


# The parts of the package that decide what a kernel compiles to. The operator library, benchmarks and
# tools are left out: editing them must not throw away every compiled kernel.
COMPILER_PARTS = ("toolchain", "runtime", "ir", "codegen", "frontends")


def _package_sources() -> list[Path]:
    root = Path(__file__).resolve().parent.parent
    return sorted(p for part in COMPILER_PARTS for p in (root / part).rglob("*")
                  if p.suffix in (".py", ".h") and "__pycache__" not in p.parts)


def _host_isa() -> str:
    """`-march=native` means a different ISA on another CPU (AMX, AVX-512): a shared cache must not mix them."""
    from tilebridge.runtime.device import cpu_info
    info = cpu_info()
    return info.model + " " + " ".join(sorted(info.flags))


@functools.cache
def toolchain_hash() -> str:
    """Covers tilebridge's compiler sources, the C headers, the compiler, its flags and the host ISA.

    Triton does not hash out-of-tree backends, so without this an edit to tilebridge would be
    served stale binaries from triton's cache.
    """
    parts = [p.read_bytes() for p in _package_sources()]
    return digest(compiler_version(), sys.version, " ".join(cflags() + LIBS), _host_isa(), *parts)[:32]


def build_shared_library(source: str, name: str) -> bytes:
    """Compile C source to a shared library and return its bytes; on failure keep the source for the user."""
    compiler = find_c_compiler()
    with tempfile.TemporaryDirectory(prefix="tilebridge-build-") as tmp:
        src, lib = Path(tmp) / f"{name}.c", Path(tmp) / f"{name}.so"
        src.write_text(source)
        cmd = [compiler, *cflags(), "-I", str(Path(__file__).resolve().parent.parent / "codegen"),
               str(src), "-o", str(lib), *LIBS]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            kept = cache_dir() / "failed" / f"{name}-{digest(source)[:12]}.c"
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(source)
            raise CompileError(f"the C compiler failed on kernel {name!r}; generated source kept at {kept}\n"
                               f"command: {' '.join(cmd)}\n{result.stderr[-4000:]}")
        return lib.read_bytes()
