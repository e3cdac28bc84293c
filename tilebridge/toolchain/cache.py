"""A content-addressed on-disk cache whose writes are atomic.

Several processes may compile the same kernel at once: each writes a private temporary file in the
cache directory and renames it over the final name, so a reader sees either nothing or a whole file.
An unwritable cache directory falls back, with a warning, to a private one for this process.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

_fallback: Path | None = None


def cache_dir() -> Path:
    global _fallback
    if _fallback is not None:
        return _fallback
    root = Path(os.environ.get("TILEBRIDGE_CACHE_DIR") or Path.home() / ".cache" / "tilebridge")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".probe-", delete=True)
        probe.close()
        return root
    except OSError as error:
        _fallback = Path(tempfile.mkdtemp(prefix="tilebridge-cache-"))
        warnings.warn(f"tilebridge cache directory {root} is not writable ({error}); "
                      f"using a private cache at {_fallback} for this process", RuntimeWarning, stacklevel=2)
        return _fallback


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def put_bytes(data: bytes, suffix: str) -> Path:
    """Store `data` under its own hash and return the path; an existing whole file is reused."""
    path = cache_dir() / "lib" / f"{digest(data)}{suffix}"
    if not (path.exists() and path.stat().st_size == len(data)):
        atomic_write(path, data)
    return path
