"""`tilebridge doctor`: check, one line at a time, everything a Triton kernel needs to run on this CPU.

When a kernel fails, the cause is usually the machine rather than the kernel: no C compiler, a compiler
without OpenMP, a glibc without libmvec, a triton or torch other than the pinned ones, or another
Triton driver active instead of tilebridge's. Each check here runs in isolation and reports its own
failure, so one broken piece does not hide the state of the others, and the last check runs a real
kernel end to end.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class CheckFailed(Exception):
    """Raised by a check with a one-line explanation for the user."""


@dataclass
class CheckResult:
    """The outcome of one check: a name, OK or not, and a detail worth reading either way."""

    name: str
    ok: bool
    detail: str

    def line(self, width: int) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'}  {self.name.ljust(width)}  {self.detail}"


_OPENMP_PROBE = """
#include <omp.h>
int tilebridge_probe(int *max_threads) {
    int threads = 0;
    *max_threads = omp_get_max_threads();
    #pragma omp parallel
    {
        #pragma omp atomic
        threads++;
    }
    return threads;
}
"""

# The same SIMD declaration the kernel header uses, so the loop vectorizes into libmvec calls
# without -ffast-math, exactly as in a generated kernel.
_LIBMVEC_PROBE = """
float expf(float) __attribute__((simd("notinbranch")));
void tilebridge_probe(const float *x, float *y, int n) {
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] = expf(x[i]);
}
"""


def _build_and_load(source: str, flags: list[str], libs: list[str]) -> tuple[ctypes.CDLL, str]:
    """Compile `source` into a shared library the way kernels are built, dlopen it, and list its imports."""
    from tilebridge.toolchain.compiler import find_c_compiler

    with tempfile.TemporaryDirectory(prefix="tilebridge-doctor-") as directory:
        src, lib = Path(directory) / "probe.c", Path(directory) / "probe.so"
        src.write_text(source)
        command = [find_c_compiler(), "-O3", "-fPIC", "-shared", *flags, str(src), "-o", str(lib), *libs]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            message = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise CheckFailed(f"`{' '.join(command)}` failed: {message}")
        nm = shutil.which("nm")
        listing = subprocess.run([nm, "-D", "--undefined-only", str(lib)], capture_output=True, text=True,
                                 check=False) if nm else None
        symbols = listing.stdout if listing else ""
        return ctypes.CDLL(str(lib)), symbols  # a loaded library stays mapped after its file is removed


def check_compiler() -> str:
    from tilebridge.toolchain.compiler import compiler_version, find_c_compiler

    return f"{find_c_compiler()} ({compiler_version()})"


def check_openmp() -> str:
    library, _ = _build_and_load(_OPENMP_PROBE, ["-fopenmp"], [])
    max_threads = ctypes.c_int(0)
    threads = library.tilebridge_probe(ctypes.byref(max_threads))
    if threads < 1:
        raise CheckFailed(f"a parallel region ran {threads} threads")
    return f"-fopenmp builds and loads; a parallel region ran {threads} threads (omp_get_max_threads() = " \
           f"{max_threads.value})"


def check_libmvec() -> str:
    flags = ["-fopenmp", "-fno-math-errno", "-march=native"]
    library, symbols = _build_and_load(_LIBMVEC_PROBE, flags, ["-lmvec", "-lm"])
    x, y = (ctypes.c_float * 16)(*[i / 8 for i in range(16)]), (ctypes.c_float * 16)()
    library.tilebridge_probe(x, y, 16)
    if abs(y[8] - 2.7182817) > 1e-5:
        raise CheckFailed(f"expf(1) computed as {y[8]} through a -lmvec library")
    vector_calls = sorted({word.split("@")[0] for word in symbols.split() if word.startswith("_ZGV")})
    how = f"loop calls {', '.join(vector_calls)}" if vector_calls else "loop did not vectorize (scalar expf)"
    return f"-lmvec links, loads and computes expf correctly; {how}"


def _check_version(package: str) -> str:
    from tilebridge import SUPPORTED_VERSIONS
    from tilebridge.compat import check_versions, installed_version

    found, wanted = installed_version(package), SUPPORTED_VERSIONS[package]
    if found is None:
        raise CheckFailed(f"{package} is not installed; tilebridge needs {package}=={wanted}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same text is reported here, once, as a FAIL line
        problems = [p for p in check_versions() if p.startswith(f"tilebridge supports {package}==")]
    if problems:
        raise CheckFailed(problems[0])
    return f"{found} (supported: {wanted})"


def check_triton_version() -> str:
    return _check_version("triton")


def check_torch_version() -> str:
    return _check_version("torch")


def check_tilelang_version() -> str:
    return _check_version("tilelang")


def check_backend_registered() -> str:
    from triton.backends import backends

    if "cpu" not in backends:
        raise CheckFailed(f"triton found backends {sorted(backends)} but no 'cpu'; reinstall with `pip install -e .`")
    return f"triton.backends['cpu'] from {backends['cpu'].compiler.__module__.rsplit('.', 1)[0]}"


def check_active_driver() -> str:
    import triton.runtime

    from tilebridge.frontends.triton.driver import CpuDriver

    active = triton.runtime.driver.active
    name = f"{type(active).__module__}.{type(active).__name__}"
    if not isinstance(active, CpuDriver):
        raise CheckFailed(f"active driver is {name}; set TILEBRIDGE_DEVICE=cpu or call tilebridge.activate()")
    return name


def check_device() -> str:
    from tilebridge.runtime.device import cpu_info

    info = cpu_info()
    return f"{info.model}; {info.cores} cores; {info.simd_bits}-bit SIMD"


def check_cache_dir() -> str:
    from tilebridge.toolchain.cache import cache_dir

    return str(cache_dir())


def check_vector_add() -> str:
    import time

    import torch

    from tilebridge.tools.demo import vector_add

    x, y = torch.randn(10_007), torch.randn(10_007)
    start = time.perf_counter()
    out = vector_add(x, y, block=256)
    elapsed = time.perf_counter() - start
    torch.testing.assert_close(out, x + y, atol=0.0, rtol=0.0)
    return f"10007 elements match torch exactly (first call {elapsed * 1e3:.0f} ms, including compile or cache load)"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("C compiler", check_compiler),
    ("OpenMP", check_openmp),
    ("libmvec", check_libmvec),
    ("triton version", check_triton_version),
    ("torch version", check_torch_version),
    ("tilelang version", check_tilelang_version),
    ("backend registered", check_backend_registered),
    ("active driver", check_active_driver),
    ("device", check_device),
    ("cache dir", check_cache_dir),
    ("Triton vector add", check_vector_add),
]


def run_checks() -> list[CheckResult]:
    """Run every check; an exception in one becomes its FAIL line and the next check still runs."""
    results = []
    for name, check in CHECKS:
        try:
            results.append(CheckResult(name, True, check()))
        except CheckFailed as error:
            results.append(CheckResult(name, False, str(error)))
        except Exception as error:  # noqa: BLE001 - unexpected: keep the type and the innermost frame for a bug report
            frame = traceback.extract_tb(error.__traceback__)[-1]
            detail = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            results.append(CheckResult(name, False, f"{detail} ({Path(frame.filename).name}:{frame.lineno})"))
    return results


def main() -> int:
    """Entry point for `tilebridge doctor`: 0 when every check passes, 1 otherwise."""
    from tilebridge import __version__

    print(f"tilebridge {__version__} doctor")
    results = run_checks()
    width = max(len(r.name) for r in results)
    for result in results:
        print(result.line(width))
    failed = [r.name for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} checks passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
