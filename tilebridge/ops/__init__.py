"""tilebridge's operator library: aten operators written once in the Triton language.

Each module is one category (`elementwise`, `binary`, `activations`, ...): Triton kernels, host
wrappers, and entries in `registry.TABLE`. The same kernels run on any device stock Triton supports;
`tilebridge.integrations.torch` puts the table behind PyTorch's dispatcher.
"""
from tilebridge.ops.registry import TABLE, Decline, OpEntry, entries

__all__ = ["TABLE", "Decline", "OpEntry", "entries"]
