"""The operator sources stay portable: nothing in them needs tilebridge's CPU backend.

Stock Triton's CUDA backend rejects launch options it does not know: `kernel[grid](..., num_threads=4)`
raises KeyError ("Keyword argument num_threads was specified but unrecognised", triton 3.6.0's
`JITFunction._pack_args`), so a CPU-only option in an operator would break it on a GPU.
"""
from __future__ import annotations

import re
from pathlib import Path

import tilebridge.ops

CPU_ONLY = re.compile(r"num_threads\s*=|tilebridge\.frontends|tilebridge\.runtime|tilebridge\.toolchain")


def test_no_operator_module_needs_the_cpu_backend():
    sources = sorted(Path(tilebridge.ops.__file__).parent.glob("*.py"))
    assert len(sources) > 10
    offenders = {path.name: CPU_ONLY.findall(path.read_text()) for path in sources}
    assert not {name: found for name, found in offenders.items() if found}
