"""out= overloads reached from ATen's C++ (`sum.IntList_out` inside `linalg.matrix_rank(..., out=)`): served or
declined, the caller's `out` holds the answer, and the alignment harness's ATen run sees the same thing.

The harness once recorded ATen's reference run under a Python dispatch mode; with a mode active,
`matrix_rank` takes its tensor-subclass path, which rebinds its result instead of writing `out=`, so the
"expected" tensor was uninitialised memory and our correct kernels were counted as FAIL.
"""
from __future__ import annotations

import torch

from tilebridge.tools import align_run


def _full_rank(n: int, batch: int, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    eye = torch.eye(n, dtype=torch.float64)
    return (torch.rand(batch, n, n, generator=generator, dtype=torch.float64) * 0.5 + 3 * eye).to(dtype)


def test_matrix_rank_out_with_the_library(library, generator):
    for dtype in (torch.float32, torch.float64):
        a = _full_rank(7, 3, dtype, generator)
        a[1, :, 3] = a[1, :, 2]  # rank 6
        expected = torch.tensor([7, 6, 7])
        out = torch.full((3,), -5, dtype=torch.int64)
        result = torch.linalg.matrix_rank(a, out=out)
        assert result.data_ptr() == out.data_ptr()
        assert torch.equal(out, expected), (dtype, out)
    assert library["served"]["sum.IntList_out"] >= 1  # the bool count of singular values above tolerance


def test_declined_out_overload_writes_the_callers_out(library, generator):
    x = torch.rand(5, 6, generator=generator, dtype=torch.float64) + 0.5
    out = torch.full((5,), -1.0, dtype=torch.float64)
    library["declined"].clear()
    result = torch.sum(x, 1, out=out)
    assert library["declined"]["sum.IntList_out"] == 1 and not library["served"]["sum.IntList_out"]
    assert result.data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, x.sum(1), rtol=0, atol=1e-12)


def test_harness_reference_run_keeps_atens_out_path():
    tally = align_run.run(["linalg.matrix_rank"], dtypes=(torch.float32,), variants=("out",), limit=6)
    assert tally.by_dtype["float32"]["PASS"] > 0
    assert tally.by_dtype["float32"]["FAIL"] == 0, tally.failures
