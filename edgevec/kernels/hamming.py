"""Hamming distance kernels over packed sign bits (uint64 words, see edgevec.codecs).

Top-k is threshold selection over small integers: each chunk of rows keeps a max-heap of
its k best keys, and a row is looked at only if its distance is at most the distance of
the chunk's current k-th best (one integer compare); a heap update is rare once the heap
is full. Per-chunk heaps are merged at the end; keys order by (distance, row), so results
do not depend on the number of chunks or threads.

The number of words per row is a compile-time constant: the caller passes `width`, a
tuple of w zeros, and Numba compiles one specialisation per tuple length (cached like
the rest). With the trip count known, LLVM unrolls the word loop completely, keeps the
query in registers and emits straight-line popcounts; with a run-time w it emitted a
vector loop that rows of 4-16 words never entered, plus a scalar remainder loop, and
the AVX2 scan ran at half the memory bandwidth.

Single query: parallel over chunks of rows; each row's words are XOR-ed and popcounted
in place (memory-bound: the scan reads each code once).

Batch of queries: parallel over chunks of rows; each chunk is cut into blocks of
BATCH_BLOCK rows, transposed once into a word-major scratch buffer that stays in L1, and
the queries, two at a time, compute the distances of the whole block: vectorised over
rows (AVX2: `vpshufb` nibble lookups; AVX-512: `vpopcntq`), with the row's words summed
in registers. A block whose smallest distance is not below a query's threshold is
skipped without a look at its rows; selection keeps a buffer per query (see
hamming_topk_batch).

`allow` is a uint8 row mask (1 = eligible) or an empty array for "all rows".
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._intrinsics import KEY_NONE, ROW_BITS, block_bounds, popcount64
from .topk import hamming_key, heap_replace_top, select_smallest

BATCH_BLOCK = 256


@njit(cache=True, nogil=True, inline="always")
def hamming_row(codes, i, q, w):
    acc = 0
    for j in range(w):
        acc += popcount64(codes[i, j] ^ q[j])
    return acc


@njit(cache=True, nogil=True, inline="always")
def _offer(heap, d, row, thr):
    """Offer one row at distance d; returns the (possibly lower) distance threshold."""
    if d <= thr:
        key = hamming_key(d, row)
        if key < heap[0]:
            heap_replace_top(heap, key)
            thr = heap[0] >> ROW_BITS
    return thr


@njit(cache=True, parallel=True, nogil=True)
def hamming_topk(codes, q, width, allow, heaps):
    """codes uint64[n, w], q uint64[w], width = (0,) * w, allow uint8[n] or [0] -> heaps
    int64[nchunks, k] of the best keys per chunk (filled with KEY_NONE by the caller)."""
    w = len(width)  # a compile-time constant (see the module docstring)
    n = codes.shape[0]
    nchunks = heaps.shape[0]
    use_mask = allow.shape[0] > 0
    for c in prange(nchunks):
        lo, hi = block_bounds(c, nchunks, n)
        heap = heaps[c]
        thr = heap[0] >> ROW_BITS
        if use_mask:  # two loops: a mask test inside the hot loop costs ~40% here
            for i in range(lo, hi):
                if allow[i]:
                    thr = _offer(heap, hamming_row(codes, i, q, w), i, thr)
        else:
            for i in range(lo, hi):
                thr = _offer(heap, hamming_row(codes, i, q, w), i, thr)


@njit(cache=True, nogil=True, inline="always")
def _collect_block(buf, count, thr, q, acc, m, b0, k):
    """Append rows b0..b0+m with distance below query q's threshold thr[q] to its buffer
    buf[q] (2k keys); a full buffer keeps its k smallest keys, and the k-th of them sets
    the new threshold. Rows come in ascending order, so a later row at the k-th distance
    can never beat the k-th key: "below" is strict."""
    t = thr[q]
    low = acc[0]
    for i in range(1, m):
        low = min(low, acc[i])
    if low >= t:  # nothing in this block beats the current k-th: skip it
        return
    n = count[q]
    row_buf = buf[q]
    for g in range(0, m, 64):
        hits = np.uint64(0)
        for i in range(g, min(m, g + 64)):  # a bit per row below the threshold
            hits |= np.uint64(acc[i] < t) << np.uint64(i - g)
        while hits:
            i = g + popcount64((hits & (~hits + np.uint64(1))) - np.uint64(1))
            hits &= hits - np.uint64(1)
            if acc[i] < t:  # t may have dropped since the bits were taken
                row_buf[n] = hamming_key(acc[i], b0 + i)
                n += 1
                if n == row_buf.shape[0]:
                    t = np.int32(select_smallest(row_buf, n, k) >> ROW_BITS)
                    n = k
    count[q] = n
    thr[q] = t


@njit(cache=True, parallel=True, nogil=True)
def hamming_topk_batch(codes, queries, width, allow, heaps):
    """codes uint64[n, w], queries uint64[nq, w], width = (0,) * w -> heaps
    int64[nchunks, nq, k] of the best keys per chunk of rows, unordered (filled with
    KEY_NONE by the caller). Queries go through a block two at a time, so each loaded code
    word serves both.

    Selection is a buffer per query rather than a heap: candidates under the threshold
    are appended (a store), and every k appends one quickselect keeps the best k and
    lowers the threshold. For the funnel's deep k (k*m: hundreds) a heap paid a sift-down
    of log2(k) levels per accepted row, ~k*ln(n/k) of them per query: 1.6x the time of
    k=10 at k=320 on 250k rows (Zen 3); with the buffer, and the rows below the threshold
    found through a bit mask rather than a branch per row, 1.5x."""
    w = len(width)  # a compile-time constant (see the module docstring)
    n = codes.shape[0]
    nchunks, nq, k = heaps.shape
    use_mask = allow.shape[0] > 0
    masked = np.int32(w * 64 + 1)  # larger than any distance: never selected
    for c in prange(nchunks):
        lo, hi = block_bounds(c, nchunks, n)
        cols = np.empty((w, BATCH_BLOCK), dtype=np.uint64)
        base = np.empty(BATCH_BLOCK, dtype=np.int32)
        acc = np.empty((2, BATCH_BLOCK), dtype=np.int32)
        buf = np.empty((nq, 2 * k), dtype=np.int64)
        count = np.zeros(nq, dtype=np.int64)
        thr = np.full(nq, masked, dtype=np.int32)  # masked rows never pass
        for b0 in range(lo, hi, BATCH_BLOCK):
            m = min(hi, b0 + BATCH_BLOCK) - b0
            for i in range(m):
                for j in range(w):
                    cols[j, i] = codes[b0 + i, j]
                base[i] = masked if use_mask and not allow[b0 + i] else 0
            for q0 in range(0, nq - 1, 2):
                for i in range(m):  # vectorised over rows; the word loop is unrolled
                    a0 = base[i]
                    a1 = base[i]
                    for j in range(w):
                        v = cols[j, i]
                        a0 += np.int32(popcount64(v ^ queries[q0, j]))
                        a1 += np.int32(popcount64(v ^ queries[q0 + 1, j]))
                    acc[0, i] = a0
                    acc[1, i] = a1
                _collect_block(buf, count, thr, q0, acc[0], m, b0, k)
                _collect_block(buf, count, thr, q0 + 1, acc[1], m, b0, k)
            if nq % 2:
                for i in range(m):
                    a0 = base[i]
                    for j in range(w):
                        a0 += np.int32(popcount64(cols[j, i] ^ queries[nq - 1, j]))
                    acc[0, i] = a0
                _collect_block(buf, count, thr, nq - 1, acc[0], m, b0, k)
        for q in range(nq):
            got = count[q]
            if got > k:
                select_smallest(buf[q], got, k)
                got = k
            for i in range(got):
                heaps[c, q, i] = buf[q, i]


def new_heaps(nchunks: int, nq: int, k: int) -> np.ndarray:
    return np.full((nchunks, nq, k), KEY_NONE, dtype=np.int64)


def width_of(w: int) -> tuple:
    """The `width` argument of the kernels for rows of w words."""
    return (0,) * w
