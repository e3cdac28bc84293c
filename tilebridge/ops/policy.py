"""Which operators `enable()` serves by default: those measured at least as fast as ATen.

The issue this answers: an operator slower than ATen at realistic sizes is left to ATen by default,
with the figure recorded. `tilebridge bench --operators` times each op with the library on and off
at transformer-layer sizes (docs/operator-performance.md has one of the two runs these figures come
from, on a shared 2-core machine: single runs swing by 2x, so each figure is the lower of two runs). Ops not
measured are not served by default either: nothing shows they are faster. `enable(include=[op])`
serves an op by name whatever its figure, and `enable(everything=True)` serves the whole library, as
the alignment harness and the model runs do.
"""
from __future__ import annotations

# ATen time / library time per aten op (above 1: the library is faster).
MEASURED: dict[str, float] = {  # the lower of two runs, rounded down: 1.00 means at least 1.0 in both
    "add": 1.15,
    "mul": 0.86,
    "exp": 2.21,
    "sigmoid": 1.10,
    "gelu": 0.64,
    "silu": 1.14,
    "where": 7.39,
    "sum": 0.58,
    "amax": 0.46,
    "mean": 0.99,
    "_softmax": 0.84,
    "_log_softmax": 1.08,
    "native_layer_norm": 0.83,
    "cumsum": 0.81,
    "mm": 1.01,
    "addmm": 0.99,
    "bmm": 1.03,
    "_scaled_dot_product_flash_attention_for_cpu": 1.67,
    "embedding": 0.73,
    "nll_loss_forward": 0.10,
    "cat": 0.68,
    "index_select": 0.72,
    "native_group_norm": 0.79,
    "topk": 0.14,
    "convolution": 0.11,
}

SERVED_BY_DEFAULT = frozenset(op for op, ratio in MEASURED.items() if ratio >= 1.0)
