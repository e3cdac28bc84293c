"""The operator table and its registration with PyTorch: enable, disable, use_ops, declines, scalars."""
from __future__ import annotations

import math

import torch

import tilebridge
from tilebridge.integrations.torch import COUNTERS, enabled_overloads
from tilebridge.integrations.torch.aten import _has_backend_kernel
from tilebridge.ops.registry import ALL, entries, packet_of


def test_every_entry_names_a_real_overload_with_a_backend_kernel():
    table = entries()
    assert len(table) > 250
    for overload, entry in table.items():
        packet, _, name = overload.partition(".")
        assert getattr(getattr(torch.ops.aten, packet), name or "default")._schema is not None
        assert _has_backend_kernel(overload), overload
        assert entry.dtypes and entry.dtypes <= ALL, overload


def test_packet_groups_variants():
    assert packet_of("add_.Tensor") == packet_of("add.out") == packet_of("add.Tensor") == "add"
    assert packet_of("_softmax_backward_data") == "_softmax_backward_data"
    assert packet_of("__and__.Tensor") == "__and__"


def test_enable_disable_and_use_ops_restore_aten(generator):
    x = torch.randn(33, 7, generator=generator)
    import tilebridge.integrations.torch as integration
    assert not enabled_overloads()
    with tilebridge.use_ops(include=["exp"]) as chosen:
        assert set(chosen) == {"exp", "exp.out", "exp_"}
        COUNTERS["served"].clear()
        torch.testing.assert_close(torch.exp(x), x.double().exp().float())
        torch.sin(x)
        assert COUNTERS["served"] == {"exp": 1}
    assert not integration.enabled_overloads()
    with tilebridge.use_ops(exclude=["elementwise"], everything=True) as chosen:
        assert "exp" not in chosen and "relu" in chosen
    tilebridge.enable(include=["activations"])
    try:
        assert "gelu" in enabled_overloads() and "add.Tensor" not in enabled_overloads()
    finally:
        tilebridge.disable()
    assert not enabled_overloads()


def test_ops_slower_than_aten_stay_with_aten_unless_named(monkeypatch):
    from tilebridge.integrations.torch import aten

    monkeypatch.setattr(aten, "SERVED_BY_DEFAULT", frozenset({"sin"}))
    try:
        assert "exp" not in tilebridge.enable() and "sin" in enabled_overloads()
        assert "exp" not in tilebridge.enable(exclude=["sin"]) and not enabled_overloads()
        assert "exp" in tilebridge.enable(include=["elementwise"]) and "exp" in tilebridge.enable(include=["exp"])
        assert "exp" in tilebridge.enable(everything=True)
    finally:
        tilebridge.disable()


def test_declined_calls_go_to_aten(library, generator):
    x = torch.randn(17, dtype=torch.float64, generator=generator)
    expected = torch.tensor([math.exp(v) for v in x.tolist()], dtype=torch.float64)
    library["declined"].clear()
    result = torch.exp(x)
    assert library["declined"] == {"exp": 1} and not library["served"]
    torch.testing.assert_close(result, expected)


def test_python_numbers_where_the_schema_says_tensor(library, generator):
    """ATen's C++ calls ops with plain numbers (at::mul(t, 2.0)); both the kernel and the fallback take them."""
    x16 = torch.randn(9, generator=generator).to(torch.bfloat16)
    assert torch.ops.aten.mul.Tensor(x16, 2.5).dtype == torch.bfloat16
    scalar = torch.tensor(3.0, dtype=torch.bfloat16)
    result = torch.ops.aten.mul.Tensor(scalar, 2.5)
    assert result.dtype == torch.bfloat16 and result.item() == 7.5
    assert torch.ops.aten.add.Tensor(torch.tensor(3, dtype=torch.int32), 2).dtype == torch.int32
    x64 = torch.randn(5, dtype=torch.float64, generator=generator)
    library["declined"].clear()
    half = torch.ops.aten.mul.Tensor(x64, 0.5)  # declined: float64 goes to ATen, with the number made a tensor
    assert library["declined"]["mul.Tensor"] == 1  # (ATen's own conversion of the number may be declined too)
    assert half.tolist() == [v / 2 for v in x64.tolist()]


def test_bad_input_keeps_atens_errors(library):
    import pytest
    with pytest.raises(RuntimeError):
        torch.ones(3, 4) + torch.ones(5)
    with pytest.raises(RuntimeError):
        torch.ones(3, dtype=torch.bool) - torch.ones(3, dtype=torch.bool)
    with pytest.raises(RuntimeError):
        torch.ones(3, dtype=torch.int32).add_(torch.ones(3))  # result type Float cannot be cast to Int


def test_autograd_runs_backward_ops_of_the_library(library, generator):
    x = torch.randn(6, 11, generator=generator, requires_grad=True)
    y = torch.nn.functional.gelu(x)
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    xd = x.detach().double().requires_grad_()
    (expected,) = torch.autograd.grad(torch.nn.functional.gelu(xd), xd, torch.ones_like(xd))
    torch.testing.assert_close(grad, expected.float(), atol=1e-5, rtol=1e-5)
    assert library["served"]["gelu"] == 1 and library["served"]["gelu_backward"] == 1


def test_a_category_that_fails_to_import_is_left_out_with_a_warning(monkeypatch):
    """Under another torch an overload may be missing: that module's ops stay with ATen, the others load."""
    import types

    import pytest

    from tilebridge.ops import registry

    table, modules = dict(entries()), registry.operator_modules()
    real_import = registry.importlib.import_module

    def import_module(name: str):
        if name == "tilebridge.ops.broken":
            registry.register("new_op.default", lambda *a: None, ALL, "broken")  # half-registered, then the failure
            raise AttributeError("'_OpNamespace' 'aten' object has no attribute 'new_op'")
        return real_import(name)

    monkeypatch.setattr(registry, "importlib", types.SimpleNamespace(import_module=import_module))
    monkeypatch.setattr(registry, "operator_modules", lambda: ["broken", *modules])
    monkeypatch.setattr(registry, "UNAVAILABLE", {})
    with pytest.warns(RuntimeWarning, match="tilebridge.ops.broken could not be imported"):
        assert entries() == table
    assert list(registry.UNAVAILABLE) == ["broken"] and "new_op" in registry.UNAVAILABLE["broken"]
    assert "new_op.default" not in registry.TABLE
