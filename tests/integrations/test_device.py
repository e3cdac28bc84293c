"""`enable(device=...)`: the table on one device's dispatch key, the CPU default as it was.

No GPU here: the CUDA registration is checked for what it must leave alone (CPU tensors), and the
non-CPU path of a kernel (one device per call, allocations where the inputs are) is checked with
`meta` tensors standing in for another device.
"""
from __future__ import annotations

import pytest
import torch

import tilebridge
from tilebridge.integrations.torch import COUNTERS, disable, enable, enabled_device, enabled_overloads, use_ops
from tilebridge.integrations.torch.aten import _on_device, allocating_on, call_device, device_type
from tilebridge.ops.registry import Decline, entries, serve_device, served_device


@pytest.fixture(autouse=True)
def _disabled():
    yield
    disable()


def test_cpu_is_the_default_and_serves_as_before():
    default = enable(include=["add"])
    assert enable(include=["add"], device="cpu") == default == tilebridge.enable(include=["add"], device="cpu")
    assert enabled_device() == "cpu" and served_device() == "cpu"
    COUNTERS["served"].clear()
    x = torch.arange(6.0)
    assert torch.equal(x + x, torch.tensor([0.0, 2, 4, 6, 8, 10]))
    assert COUNTERS["served"]["add.Tensor"] == 1


def test_cuda_registration_leaves_cpu_tensors_to_aten():
    assert enable(include=["add"], device="cuda")  # add.Scalar at least: a composite-explicit kernel
    assert enabled_device() == "cuda" and served_device() == "cuda"
    COUNTERS["served"].clear()
    COUNTERS["declined"].clear()
    x = torch.arange(6.0)
    assert torch.equal(x + x, 2 * x) and torch.equal(x.add(1), x + 1)
    assert not COUNTERS["served"] and not COUNTERS["declined"]
    disable()
    assert enabled_device() == "cpu" and served_device() == "cpu"


def test_use_ops_gives_back_the_previous_device_and_selection():
    before = enable(include=["mul"])
    with use_ops(include=["add"], device="cuda"):
        assert enabled_device() == "cuda"
    assert enabled_device() == "cpu" and list(enabled_overloads()) == before


def test_unknown_device_is_refused_by_name():
    with pytest.raises(ValueError, match="mps"):
        device_type("mps")
    assert device_type("cuda:0") == "cuda" and device_type(torch.device("cpu")) == "cpu"


def test_wrappers_serve_the_enabled_device_only():
    add = entries()["add.Tensor"].wrapper
    x = torch.arange(4.0)
    assert torch.equal(add(x, x), 2 * x)
    serve_device("cuda")
    try:
        with pytest.raises(Decline):
            add(x, x)
    finally:
        serve_device("cpu")


def test_one_device_per_call():
    meta, cpu = torch.empty(3, device="meta"), torch.empty(3)
    assert call_device((meta, [meta, meta]), {}, "meta") == torch.device("meta")
    assert call_device((), {"device": "meta"}, "meta") == torch.device("meta")
    assert call_device((), {}, "meta") == torch.device("meta")
    for args, kwargs in (((meta, cpu), {}), ((meta, [cpu]), {}), ((meta,), {"out": cpu}), ((meta,), {"device": "cpu"}),
                         ((cpu,), {})):
        with pytest.raises(Decline):
            call_device(args, kwargs, "meta")


def test_allocations_land_where_the_inputs_are():
    with allocating_on(torch.device("meta")):
        assert torch.empty(2).device.type == "meta" and torch.tensor(1.0).device.type == "meta"
        assert torch.arange(3, device="cpu").device.type == "cpu"  # an explicit device is kept
    assert torch.empty(2).device.type == "cpu"
    wrapped = _on_device(lambda x: torch.empty(x.shape), "meta")
    assert wrapped(torch.empty(5, device="meta")).device.type == "meta"
    with pytest.raises(Decline):
        wrapped(torch.empty(5))
