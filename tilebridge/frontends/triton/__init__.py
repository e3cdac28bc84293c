"""The Triton frontend and backend plugin.

Registered under the `triton.backends` entry point as `cpu` (the name PyTorch Inductor looks for):
triton imports `compiler` and `driver` from this package and finds exactly one `BaseBackend` and
one `DriverBase` subclass in them.
"""
