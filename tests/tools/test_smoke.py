"""The device smoke test on the CPU: a case served by the library and equal to ATen, and a broken case reported."""
from __future__ import annotations

from tilebridge.integrations.torch import disable, enable
from tilebridge.tools import smoke


def test_cases_report_served_overloads_and_errors(monkeypatch):
    enable(include=["add", "softmax"])
    try:
        row = smoke.check("add (broadcast)", "cpu")
        assert row["ok"] and row["served"] == ["add.Tensor"] and row["max_error"] == 0.0, row
        assert smoke.check("softmax", "cpu")["ok"]
        assert not smoke.check("mm", "cpu")["ok"]  # not enabled: ATen answered
        monkeypatch.setitem(smoke.CASES, "broken", (lambda a: a.no_such_method(), [((3,), smoke.torch.float32)]))
        assert smoke.check("broken", "cpu")["error"].startswith("AttributeError")
    finally:
        disable()
