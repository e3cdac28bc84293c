"""A new process's first launch: remember triton's own install hash across processes.

Before triton looks in its disk cache for a compiled kernel it builds the cache key, and the key
starts with `triton.runtime.cache.triton_key()`: a SHA-256 over triton's Python sources and its
400 MB `libtriton.so`. Triton keeps that value in an `lru_cache`, so only the first kernel of each
process pays for it, but that first payment is about 0.45 s on this class of machine: nine tenths of
a new process's time to its first launch, for a value that changes only when triton is reinstalled.

`remember_triton_key()` wraps triton's function so that the value is kept on disk, under a name
derived from the size, modification time and inode of every `.py` and `.so` file in triton's
package (a superset of the files triton hashes). Reinstalling or editing triton changes that name,
and triton's own function computes the value afresh. The value returned is always the one triton
would compute, so the cache keys, and the kernels they find, are triton's. Set
`TILEBRIDGE_REMEMBER_TRITON_KEY=0` to leave triton's function alone.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

from tilebridge.toolchain.cache import atomic_write, cache_dir, digest

_EXTENSIONS = (".py", ".so")


def install_fingerprint(root: str) -> str:
    """A digest of the stat of every source and library file under `root`: changes when a file does."""
    parts: list[str] = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            if name.endswith(_EXTENSIONS):
                st = os.stat(os.path.join(folder, name))
                parts.append(f"{os.path.relpath(os.path.join(folder, name), root)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return digest(root, *parts)


def remembered(compute: Callable[[], str], root: str, store: Path) -> Callable[[], str]:
    """`compute`, with its value kept in `store` under the fingerprint of the install at `root`."""

    @functools.cache
    def value() -> str:
        path = store / install_fingerprint(root)
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError):
            pass
        result = compute()
        try:
            atomic_write(path, result.encode())
        except OSError:
            pass  # an unwritable cache costs the next process time, never a wrong key
        return result

    value.remembered = True  # type: ignore[attr-defined]
    value.original = compute  # type: ignore[attr-defined]
    return value


def remember_triton_key() -> None:
    """Replace `triton.runtime.cache.triton_key` (where triton's compile path looks it up) by its remembered form."""
    if os.environ.get("TILEBRIDGE_REMEMBER_TRITON_KEY", "1") == "0":
        return
    import triton
    from triton.runtime import autotuner, cache

    if getattr(cache.triton_key, "remembered", False):
        return  # already installed
    root = os.path.dirname(os.path.abspath(triton.__file__))
    memo = remembered(cache.triton_key, root, cache_dir() / "triton-key")
    cache.triton_key = memo
    autotuner.triton_key = memo  # autotuner imported the name itself, for its on-disk results
