"""tilebridge: Triton and TileLang kernels, unmodified, compiled to native code on the CPU.

Importing this package is cheap on purpose: triton discovers the backend plugin
(`tilebridge.frontends.triton`) while `import triton` is still running, so nothing here may
import triton or torch at module level.
"""
from __future__ import annotations

__version__ = "0.1.0"

# Pinned because tilebridge relies on their internals (TTIR, the tile TIR, the dispatcher).
SUPPORTED_VERSIONS = {"triton": "3.6.0", "torch": "2.13.0", "tilelang": "0.1.15"}


def activate() -> None:
    """Make the CPU the active Triton device, even where a GPU driver is active too."""
    import triton  # noqa: F401 - first: importing triton imports this backend's driver module itself

    from tilebridge.frontends.triton.driver import activate as _activate
    _activate()


def deactivate() -> None:
    """Give the active-driver choice back to triton's own discovery."""
    import triton  # noqa: F401 - see activate()

    from tilebridge.frontends.triton.driver import deactivate as _deactivate
    _deactivate()


def enable(include=None, exclude=None, everything: bool = False, device="cpu") -> list[str]:
    """Serve aten ops on `device`'s tensors ("cpu" or "cuda") with tilebridge's Triton operators (see
    `tilebridge.integrations.torch`)."""
    from tilebridge.integrations.torch import enable as _enable
    return _enable(include, exclude, everything, device)


def disable() -> None:
    """Give every aten op back to ATen."""
    from tilebridge.integrations.torch import disable as _disable
    _disable()


def use_ops(include=None, exclude=None, everything: bool = False, device="cpu"):
    """Context manager: the operator library on (optionally a subset) inside a `with` block."""
    from tilebridge.integrations.torch import use_ops as _use_ops
    return _use_ops(include, exclude, everything, device)


def migrate() -> None:
    """Map what CUDA host code asks of PyTorch (devices, `.cuda()`, `torch.cuda.*`) onto the CPU for this process."""
    from tilebridge.integrations.torch.migrate import migrate as _migrate
    _migrate()


def unmigrate() -> None:
    """Undo `migrate()`."""
    from tilebridge.integrations.torch.migrate import unmigrate as _unmigrate
    _unmigrate()
