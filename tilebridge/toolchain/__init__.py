"""The toolchain: find the C compiler, build shared libraries, keep them in an atomic on-disk cache."""
