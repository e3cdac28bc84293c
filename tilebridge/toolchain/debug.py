"""Every level is open: dump each stage of a kernel, or replace its generated C.

TILEBRIDGE_DUMP=DIR writes `<kernel>.ttir`, `<kernel>.tbir` (the loop IR) and `<kernel>.c` to DIR as
kernels compile. TILEBRIDGE_OVERRIDE_DIR=DIR makes a kernel whose `<kernel>.c` exists there compile
from that file instead of the generated C (combine with TRITON_ALWAYS_COMPILE=1 so that triton's
cache does not serve the previous binary). Triton's own TRITON_KERNEL_DUMP works too, since these
are stages of triton's pipeline.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def dump_stage(name: str, texts: dict[str, str]) -> None:
    root = os.environ.get("TILEBRIDGE_DUMP")
    if not root:
        return
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, text in texts.items():
        (folder / f"{name}.{suffix}").write_text(text)


def override_digest() -> str:
    """A digest of every replacement source, or '' when no override directory is set."""
    root = os.environ.get("TILEBRIDGE_OVERRIDE_DIR")
    if not root or not Path(root).is_dir():
        return ""
    h = hashlib.sha256()
    for path in sorted(Path(root).iterdir()):
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def override_source(name: str, suffix: str) -> str | None:
    root = os.environ.get("TILEBRIDGE_OVERRIDE_DIR")
    if not root:
        return None
    path = Path(root) / f"{name}.{suffix}"
    return path.read_text() if path.exists() else None
