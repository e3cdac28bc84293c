"""The per-operator comparison with ATen: both sides run, the library's side is really the library's."""
from __future__ import annotations

import torch

from tilebridge.bench.operators import CASES, OperatorCase, markdown, measure


def test_a_served_op_gets_a_ratio_and_an_unserved_one_is_marked() -> None:
    x = torch.randn(100_003, generator=torch.Generator().manual_seed(0))
    served = measure(OperatorCase("exp", "100003", lambda: (lambda: torch.exp(x))), repetitions=2)
    assert served.served and served.error is None and served.ratio > 0
    unserved = measure(OperatorCase("exp", "100003", lambda: (lambda: torch.cos(x))), repetitions=2)
    assert not unserved.served and unserved.ratio is None
    text = markdown([served, unserved], "tilebridge bench --operators", "test machine")
    assert "| `exp` | 100003 |" in text and "not served" in text


def test_cases_name_ops_the_library_registers() -> None:
    from tilebridge.ops.registry import entries

    packets = {entry.packet for entry in entries().values()}
    assert {case.op for case in CASES} <= packets
