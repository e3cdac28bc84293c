"""Convolution (1-D and 2-D, any stride, padding, dilation and groups, with or without bias) as an
implicit GEMM, forward and backward: `convolution` and `convolution_backward`.

`F.conv1d/conv2d` reach the CPU key as `aten::convolution` (CompositeExplicitAutograd: ATen's CPU
kernel behind it picks oneDNN or its own im2col path), and autograd's formula for it calls
`aten::convolution_backward`; those are the two overloads served. A 1-D convolution is a 2-D one of
height 1 (views, no copy).

Implicit GEMM: the product runs over the conv's matrices without ever writing the im2col matrix.
Forward: rows are output pixels (n, oh, ow), columns the output channels of one group, and the
reduction walks the (kh, kw) taps, then the group's input channels in blocks; each block loads a
[pixels, channels] tile of the input at the tap's shifted positions (out-of-image positions masked
to the zero padding) and a [channels, out-channels] tile of the weight, into one `tl.dot` (no
div/mod in the reduction loop: flattening (channel, kh, kw) into one index for a first layer's
few channels measured slower than padding the channel block to the dot's 16). The input gradient is the
same product run from the input pixels' side (the taps that a pixel feeds, where the stride
divides), the weight gradient one product per tap over all output pixels, the bias gradient a sum
per channel. Every operand is read through its strides (channels-last costs no copy); accumulation
is fp32 for every dtype (products of fp32 inputs exact: `input_precision="ieee"`), each result
rounded once. Transposed convolutions, 3-D ones, and padding ATen calls an error are declined.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from tilebridge.grid import cdiv, next_power_of_2
from tilebridge.ops.launching import launchable
from tilebridge.ops.pointwise import bind
from tilebridge.ops.registry import FLOATS, Decline, register

CATEGORY = "conv"
BLOCK_PIXELS = 64
MAX_GRID = 65535
MAX_OFFSET = 2**62  # offsets are int64 in the kernels; this only guards their sum against overflow


def _jit(*specialized: str):
    """triton.jit that specializes only the constexprs (upper case) and the `specialized` strides: sizes, steps
    and outer strides vary per call and never cost a compile; a unit channel or innermost pixel stride makes a
    tile's loads contiguous, so those stay specialized."""
    def decorate(fn):
        names = fn.__code__.co_varnames[:fn.__code__.co_argcount]
        scalars = [n for n in names if not n.endswith("_ptr") and not n.isupper() and n not in specialized]
        return launchable(triton.jit(fn, do_not_specialize=scalars))
    return decorate


@triton.jit
def _dot(acc, a, b):
    """acc + a @ b in fp32; fp32 operands multiply exactly (never TF32), as ATen does on every device."""
    if a.dtype == tl.float32:
        return acc + tl.dot(a, b, input_precision="ieee")
    return acc + tl.dot(a, b)


@_jit("sxc", "sxw", "swc", "syw")
def forward_kernel(x_ptr, w_ptr, b_ptr, y_ptr, sb, P, H, W, OH, OW, C, CO, KH, KW, sxn, sxc, sxh, sxw, swo, swc, swh, sww,
                   syn, syc, syh, syw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, HAS_BIAS: tl.constexpr,
                   BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_K: tl.constexpr):
    """y[n, g*CO + co, oh, ow] = b + sum over (c, kh, kw) of x[n, g*C + c, ih, iw] * w[g*CO + co, c, kh, kw],
    ih = oh * stride_h - pad_h + kh * dil_h (iw alike); program (pixel block, out-channel block, group g)."""
    group = tl.program_id(2).to(tl.int64)
    p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    p_in, co_in = p < P, co < CO
    n, rest = p // (OH * OW), p % (OH * OW)
    oh, ow = rest // OW, rest % OW
    ih0, iw0 = oh * stride_h - pad_h, ow * stride_w - pad_w
    x_cols = x_ptr + n * sxn + group * C * sxc                    # [BLOCK_P]: each column's image
    w_rows = w_ptr + (group * CO + co).to(tl.int64) * swo         # [BLOCK_CO]: each row's filter
    acc = tl.zeros([BLOCK_CO, BLOCK_P], tl.float32)
    for kh in range(KH):
        ih = ih0 + kh * dil_h
        row_in = p_in & (ih >= 0) & (ih < H)
        for kw in range(KW):
            iw = iw0 + kw * dil_w
            tap_in = row_in & (iw >= 0) & (iw < W)
            x_tap = x_cols + ih * sxh + iw * sxw
            w_tap = w_rows + kh * swh + kw * sww
            for start in range(0, C, BLOCK_K):
                c = start + tl.arange(0, BLOCK_K)
                c_in = c < C
                a = tl.load(w_tap[:, None] + c.to(tl.int64)[None, :] * swc, mask=co_in[:, None] & c_in[None, :],
                            other=0.0)
                b = tl.load(x_tap[None, :] + c.to(tl.int64)[:, None] * sxc, mask=c_in[:, None] & tap_in[None, :],
                            other=0.0)
                acc = _dot(acc, a, b)
    if HAS_BIAS:
        acc += tl.load(b_ptr + (group * CO + co).to(tl.int64) * sb, mask=co_in, other=0.0).to(tl.float32)[:, None]
    y_at = (group * CO + co).to(tl.int64)[:, None] * syc + (n * syn + oh * syh + ow * syw)[None, :]
    tl.store(y_ptr + y_at, acc.to(y_ptr.dtype.element_ty), mask=co_in[:, None] & p_in[None, :])


@_jit("sgc", "sgw", "swo", "sxw")
def input_grad_kernel(g_ptr, w_ptr, dx_ptr, P, H, W, OH, OW, C, CO, KH, KW, sgn, sgc, sgh, sgw, swo, swc, swh, sww,
                      sxn, sxc, sxh, sxw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, BLOCK_P: tl.constexpr,
                      BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
    """dx[n, g*C + c, ih, iw] = sum over (co, kh, kw) of dy[n, g*CO + co, oh, ow] * w[g*CO + co, c, kh, kw] over the
    taps where ih + pad_h - kh * dil_h = oh * stride_h for an output row oh (iw alike); program (input-pixel block,
    input-channel block, group)."""
    group = tl.program_id(2).to(tl.int64)
    p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    p_in, c_in = p < P, c < C
    n, rest = p // (H * W), p % (H * W)
    ih, iw = rest // W, rest % W
    g_rows = g_ptr + n * sgn + group * CO * sgc
    w_cols = w_ptr + group * CO * swo + c.to(tl.int64) * swc
    acc = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    for kh in range(KH):
        th = ih + pad_h - kh * dil_h
        oh = th // stride_h
        row_in = p_in & (th >= 0) & (th % stride_h == 0) & (oh < OH)
        for kw in range(KW):
            tw = iw + pad_w - kw * dil_w
            ow = tw // stride_w
            tap_in = row_in & (tw >= 0) & (tw % stride_w == 0) & (ow < OW)
            g_tap = g_rows + oh * sgh + ow * sgw
            w_tap = w_cols + kh * swh + kw * sww
            for start in range(0, CO, BLOCK_K):
                co = start + tl.arange(0, BLOCK_K)
                co_in = co < CO
                a = tl.load(g_tap[:, None] + co.to(tl.int64)[None, :] * sgc, mask=tap_in[:, None] & co_in[None, :],
                            other=0.0)
                b = tl.load(w_tap[None, :] + co.to(tl.int64)[:, None] * swo, mask=co_in[:, None] & c_in[None, :],
                            other=0.0)
                acc = _dot(acc, a, b)
    dx_at = (n * sxn + ih * sxh + iw * sxw)[:, None] + (group * C + c).to(tl.int64)[None, :] * sxc
    tl.store(dx_ptr + dx_at, acc.to(dx_ptr.dtype.element_ty), mask=p_in[:, None] & c_in[None, :])


@_jit("sgw", "sxc", "sxw", "swc")
def weight_grad_kernel(g_ptr, x_ptr, dw_ptr, P, H, W, OH, OW, C, CO, KH, KW, sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
                       swo, swc, swh, sww, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                       BLOCK_CO: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr):
    """dw[g*CO + co, c, kh, kw] = sum over output pixels (n, oh, ow) of dy[n, g*CO + co, oh, ow] * x[n, g*C + c, ih, iw];
    program (out-channel block, in-channel block, (tap, group))."""
    tap_group = tl.program_id(2)
    group = (tap_group % groups).to(tl.int64)
    tap = tap_group // groups
    kh, kw = tap // KW, tap % KW
    co = tl.program_id(0) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    co_in, c_in = co < CO, c < C
    g_cols = g_ptr + (group * CO + co).to(tl.int64) * sgc
    x_cols = x_ptr + (group * C + c).to(tl.int64) * sxc
    acc = tl.zeros([BLOCK_CO, BLOCK_C], tl.float32)
    for start in range(0, P, BLOCK_K):
        p = start + tl.arange(0, BLOCK_K).to(tl.int64)
        n, rest = p // (OH * OW), p % (OH * OW)
        oh, ow = rest // OW, rest % OW
        ih, iw = oh * stride_h - pad_h + kh * dil_h, ow * stride_w - pad_w + kw * dil_w
        p_in = p < P
        x_in = p_in & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a = tl.load(g_cols[:, None] + (n * sgn + oh * sgh + ow * sgw)[None, :], mask=co_in[:, None] & p_in[None, :],
                    other=0.0)
        b = tl.load(x_cols[None, :] + (n * sxn + ih * sxh + iw * sxw)[:, None], mask=x_in[:, None] & c_in[None, :],
                    other=0.0)
        acc = _dot(acc, a, b)
    dw_at = (group * CO + co).to(tl.int64)[:, None] * swo + c.to(tl.int64)[None, :] * swc + kh * swh + kw * sww
    tl.store(dw_ptr + dw_at, acc.to(dw_ptr.dtype.element_ty), mask=co_in[:, None] & c_in[None, :])


@_jit("sgw")
def bias_grad_kernel(g_ptr, db_ptr, P, OW, OHW, sgn, sgc, sgh, sgw, BLOCK: tl.constexpr):
    """db[co] = sum of dy[:, co] over every output pixel, in fp32; one program per channel."""
    co = tl.program_id(0).to(tl.int64)
    total = tl.zeros([BLOCK], tl.float32)
    for start in range(0, P, BLOCK):
        p = start + tl.arange(0, BLOCK).to(tl.int64)
        n, rest = p // OHW, p % OHW
        at = co * sgc + n * sgn + (rest // OW) * sgh + (rest % OW) * sgw
        total += tl.load(g_ptr + at, mask=p < P, other=0.0).to(tl.float32)
    tl.store(db_ptr + co, tl.sum(total, 0).to(db_ptr.dtype.element_ty))


def _block(size: int, least: int, most: int) -> int:
    """A power of two covering `size`, within [least, most] (a dot's dimensions are at least 16)."""
    return max(least, min(most, next_power_of_2(max(size, 1))))


def _pair(values: Any, spatial: int, name: str) -> list[int]:
    """A conv parameter as one int per spatial dim (ATen expands a single value to all of them)."""
    values = [int(v) for v in values]
    if len(values) == 1:
        values = values * spatial
    if len(values) != spatial:
        raise Decline(f"{name} of the wrong length: ATen's error")
    return values


class Geometry:
    """One convolution's shapes and parameters, in 2-D (a 1-D conv is a 2-D one of height 1)."""

    def __init__(self, x: torch.Tensor, w: torch.Tensor, stride: Any, padding: Any, dilation: Any, transposed: bool,
                 groups: int) -> None:
        if transposed:
            raise Decline("transposed convolution")
        if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or x.dim() not in (3, 4) \
                or w.dim() != x.dim():
            raise Decline("a 3-D convolution or mismatched ranks")
        if x.dtype not in FLOATS or w.dtype != x.dtype or w.device != x.device:
            raise Decline("dtypes or devices that differ")
        spatial = x.dim() - 2
        stride, padding, dilation = (_pair(v, spatial, name) for v, name in
                                     ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
        if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or groups < 1:
            raise Decline("non-positive stride or dilation, negative padding: ATen's error")
        self.one_d = spatial == 1
        if self.one_d:
            stride, padding, dilation = [1] + stride, [0] + padding, [1] + dilation
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        x4, w4 = self.as_2d(x), self.as_2d(w)
        self.N, channels, self.H, self.W = x4.shape
        self.CO_total, self.C, self.KH, self.KW = w4.shape
        if channels != self.C * groups or self.CO_total % groups or 0 in (self.C, self.CO_total, self.KH, self.KW):
            raise Decline("channels that do not match the weight and groups, or an empty weight: ATen's")
        self.CO = self.CO_total // groups
        self.OH = (self.H + 2 * padding[0] - dilation[0] * (self.KH - 1) - 1) // stride[0] + 1
        self.OW = (self.W + 2 * padding[1] - dilation[1] * (self.KW - 1) - 1) // stride[1] + 1
        if self.OH < 1 or self.OW < 1:
            raise Decline("an output of no size: ATen's error")
        self.channels_last = any(_channels_last(t) for t in (x4, w4))

    def as_2d(self, t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(2) if self.one_d else t

    def from_2d(self, t: torch.Tensor) -> torch.Tensor:
        return t.squeeze(2) if self.one_d else t

    def output(self, like: torch.Tensor) -> torch.Tensor:
        """The output, on the input's device, in ATen's layout: channels-last when the input or the weight is."""
        shape = (self.N, self.CO_total, self.OH, self.OW)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)

    def steps(self) -> list[int]:
        return [*self.stride, *self.padding, *self.dilation]


def _channels_last(t: torch.Tensor) -> bool:
    """What ATen's suggest_memory_format says for a 4-D tensor: channels-last strides that are not also contiguous."""
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _grid(*sizes: int) -> tuple[int, ...]:
    """A launch grid; Triton devices cap its second and third dims at 65535 (decline, rather than fail, past it)."""
    if max(sizes[1:]) > MAX_GRID:
        raise Decline("more groups or taps than a grid dim holds")
    return sizes


def _checked(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if sum(abs(s) * (d - 1) for s, d in zip(t.stride(), t.shape)) >= MAX_OFFSET:
            raise Decline("offsets past int64")


def convolution(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, stride: Any, padding: Any, dilation: Any,
                transposed: bool, output_padding: Any, groups: int) -> torch.Tensor:
    """`aten::convolution` for 1-D and 2-D inputs: y = conv(x, w) + bias."""
    geo = Geometry(x, w, stride, padding, dilation, transposed, groups)
    if bias is not None and (not isinstance(bias, torch.Tensor) or bias.dtype != x.dtype or bias.device != x.device
                             or tuple(bias.shape) != (geo.CO_total,)):
        raise Decline("a bias of another dtype or shape: ATen's")
    x4, w4 = geo.as_2d(x), geo.as_2d(w)
    y = geo.output(x)
    if y.numel() == 0:
        return geo.from_2d(y)
    _checked(x4, w4, y)
    block_co, block_k = _block(geo.CO, 16, 64), _block(geo.C, 16, 32)
    pixels = geo.N * geo.OH * geo.OW
    grid = _grid(cdiv(pixels, BLOCK_PIXELS), cdiv(geo.CO, block_co), groups)
    bias_stride = bias.stride(0) if bias is not None else 0
    forward_kernel[grid](x4, w4, bias if bias is not None else y, y, bias_stride, pixels, geo.H, geo.W, geo.OH, geo.OW,
                         geo.C, geo.CO, geo.KH, geo.KW, *x4.stride(), *w4.stride(), *y.stride(), *geo.steps(),
                         HAS_BIAS=bias is not None, BLOCK_P=BLOCK_PIXELS, BLOCK_CO=block_co, BLOCK_K=block_k)
    return geo.from_2d(y)


def convolution_backward(grad: torch.Tensor, x: torch.Tensor, w: torch.Tensor, bias_sizes: Any, stride: Any,
                         padding: Any, dilation: Any, transposed: bool, output_padding: Any, groups: int,
                         output_mask: Any) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """`aten::convolution_backward`: the gradients of input, weight and bias that `output_mask` asks for."""
    geo = Geometry(x, w, stride, padding, dilation, transposed, groups)
    if not isinstance(grad, torch.Tensor) or grad.dtype != x.dtype or grad.device != x.device:
        raise Decline("a gradient of another dtype")
    g4, x4, w4 = geo.as_2d(grad), geo.as_2d(x), geo.as_2d(w)
    if tuple(g4.shape) != (geo.N, geo.CO_total, geo.OH, geo.OW):
        raise Decline("a gradient of another shape: ATen's error")
    if output_mask[2] and (bias_sizes is None or [int(s) for s in bias_sizes] != [geo.CO_total]):
        raise Decline("bias sizes that do not match the weight")
    _checked(g4, x4, w4)
    pixels = geo.N * geo.OH * geo.OW
    dx = dw = db = None
    if output_mask[0]:
        dx = torch.empty_like(x4, memory_format=torch.channels_last if geo.channels_last else torch.contiguous_format)
        if dx.numel():
            block_c, block_k = _block(geo.C, 16, 64), _block(geo.CO, 16, 32)
            grid = _grid(cdiv(geo.N * geo.H * geo.W, BLOCK_PIXELS), cdiv(geo.C, block_c), groups)
            input_grad_kernel[grid](g4, w4, dx, geo.N * geo.H * geo.W, geo.H, geo.W, geo.OH, geo.OW, geo.C, geo.CO,
                                    geo.KH, geo.KW, *g4.stride(), *w4.stride(), *dx.stride(), *geo.steps(),
                                    BLOCK_P=BLOCK_PIXELS, BLOCK_C=block_c, BLOCK_K=block_k)
        dx = geo.from_2d(dx)
    if output_mask[1]:
        dw = torch.empty_like(w4, memory_format=torch.channels_last if _channels_last(w4) else torch.contiguous_format)
        if pixels == 0:
            dw.zero_()
        else:
            block_co, block_c = _block(geo.CO, 16, 64), _block(geo.C, 16, 64)
            grid = _grid(cdiv(geo.CO, block_co), cdiv(geo.C, block_c), geo.KH * geo.KW * groups)
            weight_grad_kernel[grid](g4, x4, dw, pixels, geo.H, geo.W, geo.OH, geo.OW, geo.C, geo.CO, geo.KH, geo.KW,
                                     *g4.stride(), *x4.stride(), *dw.stride(), *geo.steps(), groups,
                                     BLOCK_CO=block_co, BLOCK_C=block_c, BLOCK_K=BLOCK_PIXELS)
        dw = geo.from_2d(dw)
    if output_mask[2]:
        db = torch.empty(geo.CO_total, dtype=grad.dtype, device=grad.device)
        bias_grad_kernel[(geo.CO_total,)](g4, db, pixels, geo.OW, geo.OH * geo.OW, *g4.stride(), BLOCK=256)
    return dx, dw, db


def _wrapper(overload: str, body: Any):
    packet, _, name = overload.partition(".")
    schema = getattr(getattr(torch.ops.aten, packet), name or "default")._schema
    names = [a.name for a in schema.arguments]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = bind(schema, args, kwargs)
        return body(*(bound[n] for n in names))

    return wrapper


register("convolution", _wrapper("convolution", convolution), FLOATS, CATEGORY)
register("convolution_backward", _wrapper("convolution_backward", convolution_backward), FLOATS, CATEGORY)
