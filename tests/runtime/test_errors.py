"""Bad input gets a clear exception, never a crash or a silent wrong answer."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.runtime import kernels as K
from tilebridge.frontends.triton.lower import LoweringError
from tilebridge.runtime.launcher import KernelLaunchError


def test_non_cpu_tensor_is_refused_before_launch() -> None:
    x = torch.empty(16, device="meta")
    o = torch.empty(16)
    with pytest.raises(KernelLaunchError, match="argument 'X' is a tensor on meta"):
        K.scale_kernel[(1,)](x, o, 16, 1.0, BLOCK=16)


def test_wrong_argument_count() -> None:
    with pytest.raises(TypeError):
        K.scale_kernel[(1,)](torch.empty(4), 4, 1.0, BLOCK=16)


def test_wrong_argument_type() -> None:
    with pytest.raises((KernelLaunchError, TypeError, ValueError)):
        K.scale_kernel[(1,)]("not a tensor", torch.empty(4), 4, 1.0, BLOCK=16)


def test_unsupported_construct_names_it_and_the_source_line() -> None:
    with pytest.raises(Exception) as info:
        K.inline_asm_kernel[(1,)](torch.randn(16), torch.empty(16), BLOCK=16)
    text = str(info.value)
    assert isinstance(info.value, LoweringError) or "elementwise_inline_asm" in text
    assert "elementwise_inline_asm" in text
    assert "kernels.py" in text and "inline_asm_elementwise" in text


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_snippet(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, TRITON_ALWAYS_COMPILE="1", **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=300)


LAUNCH = """
    import torch
    from tests.runtime import kernels as K
    x = torch.randn(100); o = torch.empty(100)
    K.scale_kernel[(1,)](x, o, 100, 2.0, BLOCK=128)
    assert torch.allclose(o, x * 2)
    print("launched")
"""


def test_missing_c_compiler_says_what_was_looked_for(tmp_path) -> None:
    result = run_snippet(LAUNCH, TILEBRIDGE_CC="no-such-cc", CC="no-such-cc-either", PATH=str(tmp_path),
                         TILEBRIDGE_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode != 0
    assert "C compiler" in result.stderr and "no-such-cc" in result.stderr


def test_failed_c_compile_keeps_the_source(tmp_path) -> None:
    fake = tmp_path / "failing-cc"
    fake.write_text("#!/bin/sh\necho 'simulated compiler failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = run_snippet(LAUNCH, TILEBRIDGE_CC=str(fake), TILEBRIDGE_CACHE_DIR=str(tmp_path / "cache"))
    assert result.returncode != 0
    assert "generated source kept at" in result.stderr and "simulated compiler failure" in result.stderr
    kept = list((tmp_path / "cache" / "failed").glob("*.c"))
    assert kept and "scale_kernel_launch" in kept[0].read_text()


def test_unwritable_cache_dir_warns_and_uses_a_private_cache(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("")
        locked = blocker / "cache"
    result = run_snippet(LAUNCH, TILEBRIDGE_CACHE_DIR=str(locked))
    assert result.returncode == 0, result.stderr
    assert "launched" in result.stdout
    assert "not writable" in result.stderr and "private cache" in result.stderr


def test_dump_and_override_stages(tmp_path) -> None:
    dump = tmp_path / "dump"
    result = run_snippet(LAUNCH, TILEBRIDGE_DUMP=str(dump), TILEBRIDGE_CACHE_DIR=str(tmp_path / "c1"))
    assert result.returncode == 0, result.stderr
    files = {p.name for p in dump.iterdir()}
    assert {"scale_kernel.ttir", "scale_kernel.tbir", "scale_kernel.c"} <= files
    assert "tt.func" in (dump / "scale_kernel.ttir").read_text()
    # A replaced C source is what runs: here it scales by 3 instead of the factor passed.
    override = tmp_path / "override"
    override.mkdir()
    source = (dump / "scale_kernel.c").read_text().replace("* a_factor", "* 3.0f")
    assert "* 3.0f" in source
    (override / "scale_kernel.c").write_text(source)
    check = LAUNCH.replace("assert torch.allclose(o, x * 2)", "assert torch.allclose(o, x * 3)")
    result = run_snippet(check, TILEBRIDGE_OVERRIDE_DIR=str(override), TILEBRIDGE_CACHE_DIR=str(tmp_path / "c2"))
    assert result.returncode == 0, result.stderr
    # The replaced build must not be served from the cache to a process without the override.
    fresh = dict(os.environ, TILEBRIDGE_CACHE_DIR=str(tmp_path / "c2"))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(LAUNCH)], capture_output=True, text=True, env=fresh,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
