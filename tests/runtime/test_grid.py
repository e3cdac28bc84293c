"""The host-side grid helpers agree with triton's own wherever the wrappers call them."""
import random

import pytest
import triton

from tilebridge.grid import cdiv, next_power_of_2


def test_next_power_of_2_matches_triton():
    sizes = list(range(0, 4100)) + [random.Random(7).randrange(1, 1 << 40) for _ in range(500)] + [(1 << 31) + 1]
    for n in sizes:
        assert next_power_of_2(n) == triton.next_power_of_2(n), n


@pytest.mark.parametrize("denominator", [1, 3, 16, 1000, 4096])
def test_cdiv_matches_triton(denominator):
    for numerator in list(range(0, 5000, 7)) + [(1 << 40) + 3]:
        assert cdiv(numerator, denominator) == triton.cdiv(numerator, denominator)
