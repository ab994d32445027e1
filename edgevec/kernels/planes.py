"""Scan over multi-bit residual sign codes (edgevec.codecs.residual_planes): a row is b
planes of sign bits s_p with a scale a_p each, x ~= sum_p a_p s_p; a query is bq planes
t_r with scales c_r. Their inner product is a weighted sum over plane pairs of popcount
dot products (symmetric distance computation, as in Tencent's BEBR):

    score = sum_p a_p * sum_r c_r * (d - 2 * popcount(s_p XOR t_r))

The popcounts are integers; the weighting runs in float64 in a fixed order (plane r
inside plane p) with no fused multiply-adds, so the NumPy reference
(edgevec.kernels.reference.planes_scores) gives the same bits on every CPU. A score is
rounded to float32 and keyed by its order-preserving int32 pattern (ties: lower row).

One kernel serves one query and a batch: parallel over chunks of rows, each row's planes
read once for every query, a max-heap of keys per chunk and query. `allow` is a uint8
row mask (1 = eligible) or an empty array for "all rows".
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._intrinsics import block_bounds, popcount64
from .topk import heap_replace_top, score_key


@njit(cache=True, nogil=True, inline="always")
def ordered_bits(x):
    """The bits of float32 x as an int32 that orders like x (no NaN here)."""
    cell = np.empty(1, dtype=np.float32)
    cell[0] = x
    i = cell.view(np.int32)[0]
    return i ^ np.int32(0x7FFFFFFF) if i < 0 else i


@njit(cache=True, nogil=True)
def plane_score(codes, scales, i, qcodes, qscales, q, dim):
    """float64 score of row i against query q (see the module docstring)."""
    b = codes.shape[1]
    bq = qcodes.shape[1]
    w = codes.shape[2]
    total = 0.0
    for p in range(b):
        inner = 0.0
        for r in range(bq):
            h = 0
            for j in range(w):
                h += popcount64(codes[i, p, j] ^ qcodes[q, r, j])
            inner += qscales[q, r] * np.float64(dim - 2 * h)
        total += np.float64(scales[i, p]) * inner
    return total


@njit(cache=True, parallel=True, nogil=True)
def planes_topk(codes, scales, qcodes, qscales, dim, allow, heaps):
    """codes uint64[n, b, w], scales float32[n, b], qcodes uint64[nq, bq, w], qscales
    float64[nq, bq], allow uint8[n] or [0] -> heaps int64[nchunks, nq, k] of the best
    score keys per chunk and query (filled with KEY_NONE by the caller)."""
    n = codes.shape[0]
    nq = qcodes.shape[0]
    nchunks = heaps.shape[0]
    use_mask = allow.shape[0] > 0
    for c in prange(nchunks):
        lo, hi = block_bounds(c, nchunks, n)
        for i in range(lo, hi):
            if use_mask and not allow[i]:
                continue
            for q in range(nq):
                s = np.float32(plane_score(codes, scales, i, qcodes, qscales, q, dim))
                key = score_key(ordered_bits(s), i)
                heap = heaps[c, q]
                if key < heap[0]:
                    heap_replace_top(heap, key)
