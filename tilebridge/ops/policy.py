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
    "add": 2.59,
    "mul": 0.42,
    "exp": 2.51,
    "sigmoid": 0.85,
    "gelu": 0.22,
    "silu": 1.01,
    "where": 0.86,
    "sum": 0.29,
    "amax": 0.13,
    "mean": 0.19,
    "_softmax": 0.55,
    "_log_softmax": 0.44,
    "native_layer_norm": 0.83,
    "cumsum": 0.16,
    "mm": 0.22,
    "addmm": 0.32,
    "bmm": 0.36,
    "_scaled_dot_product_flash_attention_for_cpu": 1.14,
    "embedding": 0.21,
    "nll_loss_forward": 0.09,
    "cat": 0.49,
    "index_select": 0.13,
    "native_group_norm": 0.47,
    "topk": 0.05,
}

SERVED_BY_DEFAULT = frozenset(op for op, ratio in MEASURED.items() if ratio >= 1.0)
