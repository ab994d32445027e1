"""int8 dot-product kernels: an int16 query against int8 codes, int32 accumulation.

The search layer turns a float32 query into int16 (see edgevec.search.quantize_query) with
a scale chosen so that |q| * 127 * dim < 2**31: no partial sum can overflow int32. The
accumulator is cast back to int32 at every step because Numba would otherwise widen the
products to int64 and LLVM would not use 32-bit vector lanes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._intrinsics import block_bounds
from .topk import heap_replace_top, score_key


@njit(cache=True, nogil=True, inline="always")
def dot_i8_row(codes, i, q, d):
    acc = np.int32(0)
    for j in range(d):
        acc = np.int32(acc + np.int32(q[j]) * np.int32(codes[i, j]))
    return acc


@njit(cache=True, parallel=True, nogil=True)
def dot_i8_rescore_batch(codes, q, rows, out):
    """codes int8[n, d], q int16[nq, d], rows int64[nq, m] (each < n) -> out int32[nq, m]:
    each query's own candidate rows, queries in parallel (one query: nq = 1)."""
    d = codes.shape[1]
    for i in prange(q.shape[0]):
        qi = q[i]
        for r in range(rows.shape[1]):
            out[i, r] = dot_i8_row(codes, rows[i, r], qi, d)


@njit(cache=True, parallel=True, nogil=True)
def dot_i8_topk(codes, q, allow, heaps):
    """Full scan: codes int8[n, d], q int16[d], allow uint8[n] or [0] -> heaps
    int64[nchunks, k] of the best score keys per chunk (filled with KEY_NONE by the
    caller)."""
    n, d = codes.shape
    nchunks = heaps.shape[0]
    use_mask = allow.shape[0] > 0
    for c in prange(nchunks):
        lo, hi = block_bounds(c, nchunks, n)
        heap = heaps[c]
        for i in range(lo, hi):
            if use_mask and not allow[i]:
                continue
            key = score_key(dot_i8_row(codes, i, q, d), i)
            if key < heap[0]:
                heap_replace_top(heap, key)


@njit(cache=True, parallel=True, nogil=True)
def dot_f8_rescore_batch(codes, table, q, rows, out):
    """codes uint8[n, d] float8 codes, table int64[256] (codecs.float8_int_table), q
    int64[nq, d], rows int64[nq, m] (each < n) -> out int64[nq, m]: exact integer dot
    products of each query with its own candidate rows, the codes decoded by the table."""
    d = codes.shape[1]
    for i in prange(q.shape[0]):
        qi = q[i]
        for r in range(rows.shape[1]):
            row = rows[i, r]
            acc = np.int64(0)
            for j in range(d):
                acc += qi[j] * table[codes[row, j]]
            out[i, r] = acc
