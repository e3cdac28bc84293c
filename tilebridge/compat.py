"""Version pins: tilebridge relies on internals of triton, tilelang and torch, so it says so when others are found."""
from __future__ import annotations

import warnings
from importlib import metadata

from tilebridge import SUPPORTED_VERSIONS  # tilelang's tile TIR changes between 0.1.x releases: pinned too

_checked = False


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> list[str]:
    """Warn once per process for every pinned package found at another version; return the messages."""
    global _checked
    problems = []
    for package, wanted in SUPPORTED_VERSIONS.items():
        found = installed_version(package)
        if found is None:
            continue
        if found.split("+")[0] != wanted:
            problems.append(f"tilebridge supports {package}=={wanted}, but {package} {found} is installed; "
                            f"kernels may fail to compile or run. Install {package}=={wanted}.")
    if not _checked:
        _checked = True
        for message in problems:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
    return problems
