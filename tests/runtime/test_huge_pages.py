"""Large tensors a kernel may write are advised onto transparent huge pages before the launch.

The advice may only make first touches cheaper: results are the same with it on or off
(`TILEBRIDGE_HUGEPAGES=0`), and it covers only the whole 2 MiB pages inside a contiguous tensor.
Whether the kernel grants huge pages depends on the machine (`/sys/kernel/mm/transparent_hugepage`),
so the tests read the advice itself (the VMA's `hg` flag in /proc/self/smaps), not the grant.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import triton
import triton.language as tl

HUGE = 2 << 20
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
needs_thp = pytest.mark.skipif(not Path("/proc/self/smaps").exists() or not THP.exists()
                               or "[never]" in THP.read_text(),
                               reason="no transparent huge pages on this machine: there is nothing to advise")


@triton.jit
def affine_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) * 1.5 - 2.0, mask=mask)


def advised_ranges() -> list[tuple[int, int]]:
    """The address ranges of this process's mappings that carry MADV_HUGEPAGE."""
    ranges, current = [], None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(v, 16) for v in head.split("-"))
            current = (lo, hi)
        elif head == "VmFlags:" and " hg" in line and current is not None:
            ranges.append(current)
    return ranges


def not_advised(t: torch.Tensor) -> torch.Tensor:
    """`t` with every page it touches marked MADV_NOHUGEPAGE: a new tensor may reuse heap pages that an
    earlier test's launch advised, so the tests set the state they start from instead of assuming it."""
    page = mmap.PAGESIZE
    lo, hi = t.data_ptr() & ~(page - 1), (t.data_ptr() + t.nbytes + page - 1) & ~(page - 1)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.madvise(lo, hi - lo, mmap.MADV_NOHUGEPAGE) == 0, os.strerror(ctypes.get_errno())
    return t


def covered(lo: int, hi: int) -> bool:
    return any(a <= lo and hi <= b for a, b in advised_ranges())


def inner_huge_pages(t: torch.Tensor) -> tuple[int, int]:
    p = t.data_ptr()
    return (p + HUGE - 1) & ~(HUGE - 1), (p + t.nbytes) & ~(HUGE - 1)


@needs_thp
def test_a_fresh_large_output_is_advised_and_written_right() -> None:
    n = 3_000_017  # 12 MiB of fp32: whole 2 MiB pages inside, ragged ends
    x = torch.randn(n, generator=torch.Generator().manual_seed(3))
    out = not_advised(torch.empty(n))
    lo, hi = inner_huge_pages(out)
    assert hi > lo and not covered(lo, hi)
    affine_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)
    torch.testing.assert_close(out, x * 1.5 - 2.0)
    assert covered(lo, hi)
    assert not covered(lo - 4096, lo)  # the tensor's ragged head (or its allocator header) is not advised


@needs_thp
def test_small_and_strided_tensors_are_left_alone() -> None:
    small = torch.randn(1000)
    strided_base = not_advised(torch.empty(2 * 3_000_000))
    strided = strided_base[::2]  # 12 MiB of elements spread over 24 MiB: not contiguous
    affine_kernel[(1,)](small, small, 1000, BLOCK=1024)
    lo, hi = inner_huge_pages(strided_base)
    assert not covered(lo, hi)
    # A strided view passed as a pointer: the kernel sees element k at 2k only through its own
    # arithmetic, so tilebridge does not know the span and leaves it alone.
    affine_kernel[(1,)](small, strided, 10, BLOCK=16)
    assert not covered(lo, hi)


@triton.jit
def strided_sum_kernel(x_ptr, partial_ptr, total_ptr, n, steps, BLOCK: tl.constexpr):
    """Writes through a pointer carried and advanced by a loop, and through an atomic."""
    offsets = tl.arange(0, BLOCK)
    out = partial_ptr + tl.program_id(0) * BLOCK
    for step in range(steps):
        cols = (tl.program_id(0) * steps + step) * BLOCK + offsets
        x = tl.load(x_ptr + cols, mask=cols < n, other=0.0)
        tl.store(out + offsets, x)
        out += BLOCK * tl.num_programs(0)
        tl.atomic_add(total_ptr + offsets % 16, x)


@needs_thp
def test_only_tensors_the_kernel_may_write_are_advised() -> None:
    """The advice is for the first touch of fresh outputs; a large input the kernel only reads keeps its
    pages (and the launch its syscall and attribute reads)."""
    n = 3_000_017
    # small integers, so the atomics' fp32 sums are exact in any order of accumulation
    x = not_advised(torch.randint(-8, 9, (n,), generator=torch.Generator().manual_seed(7)).float())
    out = not_advised(torch.empty(n))
    affine_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)
    torch.testing.assert_close(out, x * 1.5 - 2.0)
    assert covered(*inner_huge_pages(out)) and not covered(*inner_huge_pages(x))

    programs, steps, block = 4, 184, 4096  # 4 * 184 * 4096 >= n: every element lands in `partial`
    partial = not_advised(torch.zeros(programs * steps * block))
    total = not_advised(torch.zeros(HUGE * 3 // 4))  # 6 MiB, of which the atomics touch 16 floats
    strided_sum_kernel[(programs,)](x, partial, total, n, steps, BLOCK=block)
    assert covered(*inner_huge_pages(partial)) and covered(*inner_huge_pages(total))
    assert not covered(*inner_huge_pages(x))
    torch.testing.assert_close(total[:16].double(), torch.nn.functional.pad(x, (0, (-n) % 16)).double().view(-1, 16).sum(0),
                               rtol=0, atol=0)


def test_switched_off_by_the_environment_with_the_same_results() -> None:
    script = (
        "import torch, triton\n"
        "from test_huge_pages import affine_kernel, covered, inner_huge_pages\n"
        "n = 3_000_017\n"
        "x = torch.randn(n, generator=torch.Generator().manual_seed(5)); out = torch.empty(n)\n"
        "affine_kernel[(triton.cdiv(n, 4096),)](x, out, n, BLOCK=4096)\n"
        "torch.testing.assert_close(out, x * 1.5 - 2.0)\n"
        "print(covered(*inner_huge_pages(out)))\n")
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TILEBRIDGE_HUGEPAGES="0", PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
