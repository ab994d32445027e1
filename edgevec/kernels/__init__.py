"""Numba kernels (pure functions over arrays). Nothing is compiled at import.

Every kernel is compiled with `nogil=True`: it touches no Python object, so it runs
without the GIL and searches in several Python threads use several cores. Parallel ones
(`parallel=True`, whose parallel regions run without the GIL in any case) may be entered
by several threads at once, which Numba's "workqueue" threading layer does not allow (it
aborts the process); edgevec.search serialises their launches on that layer
(search.threads_for).
"""
