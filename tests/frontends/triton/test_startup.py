"""The remembered `triton_key()`: the same value as triton's, kept across processes, recomputed when triton changes."""
from __future__ import annotations

from pathlib import Path

from tilebridge.frontends.triton.startup import install_fingerprint, remembered


def test_value_is_kept_on_disk_and_recomputed_when_a_file_changes(tmp_path: Path) -> None:
    install, store = tmp_path / "install", tmp_path / "store"
    install.mkdir()
    (install / "module.py").write_text("x = 1\n")
    (install / "notes.txt").write_text("not hashed\n")
    calls = []

    def compute() -> str:
        calls.append(1)
        return f"key-{len(calls)}"

    assert remembered(compute, str(install), store)() == "key-1"
    assert remembered(compute, str(install), store)() == "key-1" and len(calls) == 1  # a new "process" reads it back
    (install / "notes.txt").write_text("changed, but not a source\n")
    assert remembered(compute, str(install), store)() == "key-1" and len(calls) == 1
    (install / "module.py").write_text("x = 22\n")
    assert remembered(compute, str(install), store)() == "key-2" and len(calls) == 2


def test_fingerprint_sees_new_files(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("")
    before = install_fingerprint(str(tmp_path))
    (tmp_path / "lib.so").write_bytes(b"\0")
    assert install_fingerprint(str(tmp_path)) != before


def test_installed_key_is_tritons_own() -> None:
    import triton  # noqa: F401 - the cpu backend installs the remembered key when triton makes it
    from triton.runtime import cache

    from tilebridge.frontends.triton.startup import remember_triton_key

    remember_triton_key()
    assert getattr(cache.triton_key, "remembered", False)
    assert cache.triton_key() == cache.triton_key.original()
