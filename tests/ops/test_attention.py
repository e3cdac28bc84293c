"""scaled_dot_product_attention through the library: the flash kernels against ATen eager and a float64 reference.

Sequence lengths are not powers of two and not multiples of the blocks; head dim 80 pads to a 128 tile.
The tolerance is ATen's own error against float64 plus a small per-dtype slack: the library must be
about as close to the exact answer as ATen is.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.ops.conftest import random
from tilebridge.integrations.torch.aten import bypassed

SLACK = {torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
FORWARD = "_scaled_dot_product_flash_attention_for_cpu"
BACKWARD = "_scaled_dot_product_flash_attention_for_cpu_backward"

# (batch, heads, queries, keys, head dim, causal, mask): mask None, "bool" or "float" (additive, broadcast over heads)
CASES = [
    (2, 3, 37, 37, 32, False, None),
    (1, 2, 45, 70, 64, True, None),
    (2, 2, 100, 70, 80, False, "float"),
    (1, 3, 129, 129, 64, False, "bool"),
]


def reference(q, k, v, causal: bool, mask, scale: float | None):
    """softmax(q k^T * scale + mask) v in float64 (a boolean mask keeps True entries), rows seeing nothing give 0."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else scores + mask.double()
    if causal:
        scores = scores.masked_fill(~torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril(), -math.inf)
    return torch.softmax(scores, -1).nan_to_num(0.0) @ v


def inputs(case, dtype, generator, requires_grad=False):
    batch, heads, L, S, E, causal, kind = case
    q, k, v = (random((batch, heads, n, E), dtype, generator, -1.5, 1.5) for n in (L, S, S))
    if kind == "float":
        mask = random((batch, 1, L, S), dtype, generator)
    elif kind == "bool":
        mask = torch.rand(L, S, generator=generator) < 0.8
    else:
        mask = None
    if requires_grad:
        q, k, v = (t.requires_grad_() for t in (q, k, v))
    return q, k, v, causal, mask


def assert_close_as_aten(ours, aten, exact, dtype):
    aten_error = (aten.double() - exact).abs().max().item()
    our_error = (ours.double() - exact).abs().max().item()
    assert our_error <= aten_error + SLACK[dtype] * max(1.0, exact.abs().max().item()), (our_error, aten_error)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[2]}x{c[3]}x{c[4]}{'-causal' if c[5] else ''}-{c[6]}")
def test_forward_matches_eager_and_float64(library, generator, dtype, case):
    q, k, v, causal, mask = inputs(case, dtype, generator)
    result = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    assert library["served"][FORWARD] == 1
    with bypassed():
        aten = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    assert result.dtype == dtype and result.shape == aten.shape
    assert_close_as_aten(result, aten, reference(q, k, v, causal, mask, None), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_backward_matches_float64(library, generator, dtype):
    case = (2, 2, 53, 53, 32, True, "float")
    q, k, v, causal, mask = inputs(case, dtype, generator, requires_grad=True)
    grad = random(q.shape, dtype, generator)
    F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal).backward(grad)
    assert library["served"][FORWARD] == 1 and library["served"][BACKWARD] == 1
    ours = [t.grad for t in (q, k, v)]
    exact = [t.detach().double().requires_grad_() for t in (q, k, v)]
    reference(*exact, causal, mask, None).backward(grad.double())
    for t in (q, k, v):
        t.grad = None
    with bypassed():
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal).backward(grad)
    for mine, aten, reference_grad in zip(ours, [t.grad for t in (q, k, v)], [t.grad for t in exact]):
        assert_close_as_aten(mine, aten, reference_grad, dtype)


def test_strided_inputs_scale_and_layouts(library, generator):
    """q, k, v as (B, L, H, E) buffers seen through a transpose, as attention layers make them; explicit scale."""
    q, k, v = (random((2, 21, 3, 32), torch.float32, generator).transpose(1, 2) for _ in range(3))
    result = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    with bypassed():
        aten = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert library["served"][FORWARD] == 1
    assert result.stride() == aten.stride()
    assert_close_as_aten(result, aten, reference(q, k, v, False, None, 0.3), torch.float32)


def test_rows_that_see_no_key_give_zero(library, generator):
    q, k, v = (random((1, 1, 6, 16), torch.float32, generator) for _ in range(3))
    mask = torch.zeros(6, 6)
    mask[2] = -math.inf
    out, lse = getattr(torch.ops.aten, FORWARD)(q, k, v, 0.0, False, attn_mask=mask)
    assert library["served"][FORWARD] == 1
    assert out[0, 0, 2].abs().max() == 0 and lse[0, 0, 2] == 0
    torch.testing.assert_close(out.double(), reference(q, k, v, False, mask, None), atol=1e-5, rtol=1e-5)


def test_declines_dropout_and_float64(library, generator):
    """Dropout (F.sdpa sends it down ATen's math path; called directly it reaches us) and float64 stay with ATen."""
    q = random((1, 2, 9, 16), torch.float32, generator)
    torch.manual_seed(0)
    try:
        getattr(torch.ops.aten, FORWARD)(q, q, q, 0.5, False)
    except RuntimeError:
        pass  # whatever ATen does with dropout, it is ATen's answer
    F.scaled_dot_product_attention(q.double(), q.double(), q.double())
    assert library["served"][FORWARD] == 0 and library["declined"][FORWARD] == 2


@pytest.mark.parametrize("queries, keys", [(20, 20), (30, 20), (13, 40)])
def test_causal_with_a_mask_as_aten_aligns_it(library, generator, queries, keys):
    """The overload itself takes is_causal and a mask together; causal is top-left aligned when L != S, as ATen's."""
    q = random((1, 2, queries, 16), torch.float32, generator)
    k, v = (random((1, 2, keys, 16), torch.float32, generator) for _ in range(2))
    mask = random((queries, keys), torch.float32, generator)
    out, lse = getattr(torch.ops.aten, FORWARD)(q, k, v, 0.0, True, attn_mask=mask)
    assert library["served"][FORWARD] == 1
    with bypassed():
        aten_out, aten_lse = getattr(torch.ops.aten, FORWARD)(q, k, v, 0.0, True, attn_mask=mask)
    torch.testing.assert_close(out, aten_out, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(lse, aten_lse, atol=2e-6, rtol=1e-5)
    assert lse.stride() == aten_lse.stride()
