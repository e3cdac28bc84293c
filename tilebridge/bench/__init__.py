"""`tilebridge bench`: Triton kernels timed against PyTorch eager and the machine's measured limits.

Modules: `kernels` (the Triton kernels and host wrappers), `cases` (sizes, the PyTorch code doing
the same work, bytes and flops), `timing` (interleaved medians), `roofline` (copy bandwidth and
sgemm rate), `interpreter` (the Triton interpreter comparison, in a subprocess), `suite` (one run
of everything) and `report` (table, JSON, Markdown, plot). Nothing is imported here, so that
`python -m tilebridge.bench.interpreter` can set up triton's interpreter mode before triton loads.
"""
