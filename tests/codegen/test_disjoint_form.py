"""A kernel whose store could overwrite values it reads again afterwards gets two forms: the general
one copies those values before the store; the disjoint one, taken when the launcher's entry finds the
pointer arguments' memory disjoint, reads them again where used. Overlapping, in-place and raw-address
arguments must keep Triton's semantics (the values as loaded), and disjoint ones the same results."""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def store_then_reuse_kernel(x_ptr, y_ptr, out_ptr, acc_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    inside = offsets < n
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0)
    y = tl.load(y_ptr + offsets, mask=inside, other=0.0)
    xy = x * y
    tl.store(out_ptr + offsets, xy + 1.0, mask=inside)  # may overwrite what x was loaded from
    tl.store(acc_ptr + offsets, xy * 2.0 + x, mask=inside)  # x and xy as loaded before that store


def _expected(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x * y + 1.0, x * y * 2.0 + x


def _inputs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n)
    return torch.randn(n, generator=g), torch.randn(n, generator=g)


def test_the_kernel_has_both_forms_and_disjoint_tensors_match() -> None:
    x, y = _inputs(1000)
    out, acc = torch.empty(1000), torch.empty(1000)
    compiled = store_then_reuse_kernel[(1,)](x, y, out, acc, 1000, BLOCK=1024)
    assert "(tb_disjoint != " in compiled.asm["c"]
    expected_out, expected_acc = _expected(x, y)
    torch.testing.assert_close(out, expected_out)
    torch.testing.assert_close(acc, expected_acc)


def test_an_output_overlapping_an_input_at_an_offset_keeps_the_loaded_values() -> None:
    # out[i] is x[i + 1]: the disjoint form would read x[i + 1] after out[i] replaced it
    x0, y = _inputs(1000)
    storage = torch.cat([x0, torch.zeros(1)])
    x, out = storage[:1000], storage[1:]
    acc = torch.empty(1000)
    expected_out, expected_acc = _expected(x0, y)
    store_then_reuse_kernel[(1,)](x, y, out, acc, 1000, BLOCK=1024)
    torch.testing.assert_close(acc, expected_acc)
    torch.testing.assert_close(out, expected_out)


class Address:
    """A bare address with a dtype, as some callers pass memory to Triton kernels."""

    def __init__(self, address: int, dtype: torch.dtype) -> None:
        self.address, self.dtype = address, dtype

    def data_ptr(self) -> int:
        return self.address


def test_in_place_and_bare_addresses_take_the_general_form() -> None:
    x0, y = _inputs(777)
    expected_out, expected_acc = _expected(x0, y)
    x, acc = x0.clone(), torch.empty(777)
    store_then_reuse_kernel[(1,)](x, y, x, acc, 777, BLOCK=1024)  # out is x itself
    torch.testing.assert_close(x, expected_out)
    torch.testing.assert_close(acc, expected_acc)
    storage = torch.cat([x0, torch.zeros(1)])
    acc = torch.empty(777)
    base = storage.data_ptr()
    store_then_reuse_kernel[(1,)](Address(base, torch.float32), y, Address(base + 4, torch.float32), acc, 777, BLOCK=1024)
    torch.testing.assert_close(acc, expected_acc)
    torch.testing.assert_close(storage[1:], expected_out)


def test_a_strided_view_takes_the_general_form() -> None:
    # The kernel reads and writes consecutive addresses from each data_ptr(): x reads storage[i],
    # out writes storage[i + 1]. Views with a stride of 2 hide that overlap from their nbytes.
    x0, y = _inputs(500)
    storage = torch.cat([x0, torch.zeros(501)])
    x, out = storage[0:1000:2], storage[1:1001:2]
    acc = torch.empty(500)
    expected_out, expected_acc = _expected(x0, y)
    store_then_reuse_kernel[(1,)](x, y, out, acc, 500, BLOCK=512)
    torch.testing.assert_close(acc, expected_acc)
    torch.testing.assert_close(storage[1:501], expected_out)
