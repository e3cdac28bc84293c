"""Shared fixtures: a private kernel cache per test session, so tests never read stale binaries."""
import os
import tempfile

_cache = tempfile.mkdtemp(prefix="tilebridge-test-cache-")
os.environ.setdefault("TILEBRIDGE_CACHE_DIR", os.path.join(_cache, "tilebridge"))
os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(_cache, "triton"))
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TILEBRIDGE_CHECK_ARENA", "1")  # every test kernel checks its tile arena for overflows
