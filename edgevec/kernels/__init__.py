"""Numba kernels (pure functions over arrays). Nothing is compiled at import."""
