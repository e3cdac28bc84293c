"""Integer helpers for host-side launch wrappers: grid and block sizes.

`triton.cdiv` and `triton.next_power_of_2` are ConstexprFunctions, written to be called inside kernels;
called on the host, each call unwraps its arguments through an import statement and two
comprehensions. On the 2-core bench machine that is about 2 us a call warm and 45 us right after a
64 MiB copy has evicted the caches (plain int arithmetic: 0.1 us and 9 us), paid on every launch of
a wrapper that calls them. The operator library's and the benchmark's wrappers use these instead;
they give the same results for every n >= 0.
"""
from __future__ import annotations


def cdiv(numerator: int, denominator: int) -> int:
    """Ceiling division, as `triton.cdiv`."""
    return (numerator + denominator - 1) // denominator


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= n (0 for 0), as `triton.next_power_of_2`."""
    return 1 << (n - 1).bit_length() if n > 0 else 0
