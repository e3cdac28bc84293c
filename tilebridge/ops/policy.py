"""Which operators `enable()` serves by default: those measured at least as fast as ATen.

The issue this answers: an operator slower than ATen at realistic sizes is left to ATen by default,
with the figure recorded. `tilebridge bench --operators` times each op with the library on and off
at transformer-layer sizes (docs/operator-performance.md has the run these figures come from, on a
shared 2-core machine: single runs swing by 2x, so an op near 1.0 may land on either side). Ops not
measured are not served by default either: nothing shows they are faster. `enable(include=[op])`
serves an op by name whatever its figure, and `enable(everything=True)` serves the whole library, as
the alignment harness and the model runs do.
"""
from __future__ import annotations

# ATen time / library time per aten op (above 1: the library is faster).
MEASURED: dict[str, float] = {  # rounded down, so an op shown at 1.00 was measured at 1.0 or above
    "add": 1.01,
    "mul": 0.71,
    "exp": 1.77,
    "sigmoid": 0.88,
    "gelu": 0.65,
    "silu": 0.84,
    "where": 6.09,
    "sum": 0.52,
    "amax": 0.49,
    "mean": 0.79,
    "_softmax": 0.85,
    "_log_softmax": 1.09,
    "native_layer_norm": 1.08,
    "cumsum": 0.80,
    "mm": 1.00,
    "addmm": 0.88,
    "bmm": 0.99,
    "_scaled_dot_product_flash_attention_for_cpu": 1.39,
    "embedding": 0.76,
    "nll_loss_forward": 0.10,
    "cat": 0.78,
    "index_select": 0.81,
    "native_group_norm": 0.60,
    "topk": 0.02,
    "convolution": 0.11,
}

SERVED_BY_DEFAULT = frozenset(op for op, ratio in MEASURED.items() if ratio >= 1.0)
