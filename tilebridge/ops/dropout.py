"""native_dropout and native_dropout_backward, with Triton's philox generator (`tl.rand`).

The philox seed is one int64 drawn from torch's default CPU generator at each training call, so
`torch.manual_seed` makes a run reproducible and consecutive calls get fresh masks. The mask differs
from ATen's (a different generator), but keeps each element with probability 1 - p, independently,
as ATen's does. Dropped elements are multiplied by 0, not replaced by it, so NaN and inf stay NaN as
in ATen's `input * mask * scale`. On CPU, `F.dropout` itself goes through `bernoulli_` (ATen fuses to
`native_dropout` only on accelerators); `native_dropout` is what decompositions and compiled graphs call.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import launch
from tilebridge.ops.registry import FLOATS, Decline, claim, register
from tilebridge.ops.strided import MAX_ELEMENTS

CATEGORY = "dropout"
BLOCK = 1024


@launchable
@triton.jit(do_not_specialize=["n", "p", "scale"])
def dropout_kernel(x_ptr, seed_ptr, out_ptr, mask_ptr, n, p, scale, BLOCK: tl.constexpr):
    """Element i is kept when philox(seed, i) >= p: out = x * keep * scale, mask = keep."""
    index = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = index < n
    keep = tl.rand(tl.load(seed_ptr), index) >= p
    x = tl.load(x_ptr + index, mask=inside, other=0.0).to(tl.float32)
    tl.store(out_ptr + index, (x * keep.to(tl.float32) * scale).to(out_ptr.dtype.element_ty), mask=inside)
    tl.store(mask_ptr + index, keep, mask=inside)


def native_dropout(x: torch.Tensor, p: float, train: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, bool mask); train=False copies the input and keeps everything, drawing nothing from the generator."""
    claim(x.dtype, FLOATS)
    if not 0.0 <= p <= 1.0 or x.numel() > MAX_ELEMENTS or x.layout != torch.strided:
        raise Decline("p outside [0, 1] (ATen's error) or size")
    out = torch.empty(x.shape, dtype=x.dtype)
    mask = torch.empty(x.shape, dtype=torch.bool)
    if x.numel() == 0:
        return out, mask
    training = train is None or bool(train)
    if training:
        seed = torch.randint(0, 2**62, (), dtype=torch.int64)  # from torch's default generator: manual_seed governs it
        threshold, scale = float(p), (0.0 if p == 1.0 else 1.0 / (1.0 - p))
    else:
        seed, threshold, scale = torch.zeros((), dtype=torch.int64), -1.0, 1.0
    dropout_kernel[(cdiv(x.numel(), BLOCK),)](x.contiguous(), seed, out, mask, x.numel(), threshold, scale,
                                                    BLOCK=BLOCK)
    return out, mask


@triton.jit
def _masked_scale(grad, keep, scale, p1, p2):
    return grad * keep * scale


def native_dropout_backward(grad: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """grad * mask * scale, by the shared pointwise kernel (any strides, no copies)."""
    claim(grad.dtype, FLOATS)
    if mask.dtype != torch.bool or mask.shape != grad.shape:
        raise Decline("a mask that is not a bool tensor of grad's shape: ATen's")
    out = torch.empty(grad.shape, dtype=grad.dtype)
    launch(_masked_scale, out, [grad, mask], [float(scale)], grad.dtype)
    return out


register("native_dropout", native_dropout, FLOATS, CATEGORY)
register("native_dropout_backward", native_dropout_backward, FLOATS, CATEGORY)
