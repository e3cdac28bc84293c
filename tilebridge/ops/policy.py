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
MEASURED: dict[str, float] = {
    "add": 1.11,
    "mul": 0.84,
    "exp": 2.18,
    "sigmoid": 0.93,
    "gelu": 0.72,
    "silu": 0.82,
    "where": 7.12,
    "sum": 0.56,
    "amax": 0.46,
    "mean": 0.89,
    "_softmax": 0.86,
    "_log_softmax": 1.11,
    "native_layer_norm": 1.26,
    "cumsum": 0.83,
    "mm": 0.86,
    "addmm": 0.79,
    "bmm": 0.83,
    "_scaled_dot_product_flash_attention_for_cpu": 1.59,
    "embedding": 0.79,
    "nll_loss_forward": 0.10,
    "cat": 0.62,
    "index_select": 0.79,
    "native_group_norm": 0.63,
    "topk": 0.03,
    "convolution": 0.12,
}

SERVED_BY_DEFAULT = frozenset(op for op, ratio in MEASURED.items() if ratio >= 1.0)
