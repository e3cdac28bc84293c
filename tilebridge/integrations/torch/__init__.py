"""tilebridge's operator library inside PyTorch: `enable()`, `disable()`, `use_ops()` (on the CPU or CUDA key)."""
from tilebridge.integrations.torch.aten import COUNTERS, disable, enable, enabled_device, enabled_overloads, use_ops

__all__ = ["COUNTERS", "disable", "enable", "enabled_device", "enabled_overloads", "use_ops"]
