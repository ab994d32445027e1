"""Hamming distance kernels over packed sign bits (uint64 words, see edgevec.codecs).

Single query: one parallel pass computes every distance (uint16) and a histogram of
distances per block of rows; the histogram gives the exact distance threshold of the
k-th result, and a second parallel pass copies the rows under it. No sort of n values,
no heap: distances are small integers (0..bits).

Batch of queries: rows are cut into chunks, one per thread; each chunk is scanned in
blocks of BATCH_BLOCK rows that stay in cache while every query visits them, each query
keeping a heap of its best k keys per chunk; heaps are merged at the end.

`allow` is a uint8/bool row mask (1 = eligible) or an empty array for "all rows".
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._intrinsics import KEY_NONE, block_bounds, popcount64
from .topk import hamming_key, heap_replace_top

BATCH_BLOCK = 512


@njit(cache=True, inline="always")
def hamming_row(codes, i, q, w):
    acc = 0
    for j in range(w):
        acc += popcount64(codes[i, j] ^ q[j])
    return acc


@njit(cache=True, parallel=True)
def hamming_dist_hist(codes, q, allow, dist, hist):
    """codes uint64[n, w], q uint64[w], allow uint8[n] or [0] -> dist uint16[n] and
    hist int64[nblocks, w*64 + 2] (row counts per distance per block; masked rows go to
    the last bin and get distance w*64 + 1)."""
    n, w = codes.shape
    nblocks = hist.shape[0]
    masked = hist.shape[1] - 1
    use_mask = allow.shape[0] > 0
    for b in prange(nblocks):
        lo, hi = block_bounds(b, nblocks, n)
        h = hist[b]
        for i in range(lo, hi):
            if use_mask and not allow[i]:
                dist[i] = masked
                h[masked] += 1
            else:
                d = hamming_row(codes, i, q, w)
                dist[i] = d
                h[d] += 1


@njit(cache=True)
def hamming_threshold(hist, k):
    """The distance t of the k-th best row and how many rows at distance t to take.
    Returns (t, take_at_t, total) with total = eligible rows selected (min(k, eligible))."""
    nbins = hist.shape[1] - 1  # the last bin holds masked rows
    below = 0
    for t in range(nbins):
        at = 0
        for b in range(hist.shape[0]):
            at += hist[b, t]
        if below + at >= k:
            return t, k - below, k
        below += at
    return nbins, 0, below  # fewer than k eligible rows: take them all


@njit(cache=True, parallel=True)
def hamming_collect(dist, hist, t, take_at_t, out_keys):
    """Write the keys of every row with distance < t, and of the first take_at_t rows (in
    row order) at distance t, into out_keys (unsorted)."""
    nblocks = hist.shape[0]
    n = dist.shape[0]
    start_lt = np.zeros(nblocks + 1, dtype=np.int64)
    start_eq = np.zeros(nblocks + 1, dtype=np.int64)
    for b in range(nblocks):
        lt = 0
        for d in range(t):
            lt += hist[b, d]
        start_lt[b + 1] = start_lt[b] + lt
        start_eq[b + 1] = start_eq[b] + hist[b, t]
    n_lt = start_lt[nblocks]
    for b in prange(nblocks):
        lo, hi = block_bounds(b, nblocks, n)
        p_lt = start_lt[b]
        p_eq = start_eq[b]
        for i in range(lo, hi):
            d = dist[i]
            if d < t:
                out_keys[p_lt] = hamming_key(d, i)
                p_lt += 1
            elif d == t:
                if p_eq < take_at_t:
                    out_keys[n_lt + p_eq] = hamming_key(d, i)
                p_eq += 1


@njit(cache=True)
def sort_keys(keys, count):
    keys[:count] = np.sort(keys[:count])


@njit(cache=True, parallel=True)
def hamming_topk_batch(codes, queries, allow, heaps):
    """codes uint64[n, w], queries uint64[nq, w] -> heaps int64[nchunks, nq, k] of the best
    keys per chunk of rows (heaps must be filled with KEY_NONE by the caller)."""
    n, w = codes.shape
    nchunks, nq, k = heaps.shape
    use_mask = allow.shape[0] > 0
    for c in prange(nchunks):
        lo, hi = block_bounds(c, nchunks, n)
        for b0 in range(lo, hi, BATCH_BLOCK):
            b1 = min(hi, b0 + BATCH_BLOCK)
            for qi in range(nq):
                heap = heaps[c, qi]
                q = queries[qi]
                for i in range(b0, b1):
                    if use_mask and not allow[i]:
                        continue
                    key = hamming_key(hamming_row(codes, i, q, w), i)
                    if key < heap[0]:
                        heap_replace_top(heap, key)


def new_heaps(nchunks: int, nq: int, k: int) -> np.ndarray:
    return np.full((nchunks, nq, k), KEY_NONE, dtype=np.int64)
