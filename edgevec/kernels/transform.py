"""Table scan over bit-plane transform codes (edgevec.codecs.transform_pack, laid out in
byte-major blocks by codecs.transform_blocks): a row's score is the sum of one float32
table entry per code byte, added in byte order (the same float32 operations as the NumPy
reference, so the same bits), its top-k kept in a heap per chunk of blocks, keyed by (score's bits, row): every entry is >= 0, so a score's bits
order like its value; ties go to the lower row.

`allow` is a uint8 row mask (1 = eligible) or an empty array for "all rows".
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._intrinsics import block_bounds
from .topk import heap_replace_top, score_key


@njit(cache=True, parallel=True, nogil=True)
def lut_topk(blocks, n, lut, allow, heaps):
    """blocks uint8[nb, B, L] (rows in blocks of L, byte-major: blocks[b, t, i] is byte t
    of row b * L + i; rows past n are padding), lut float32[B, 256] (entries >= 0), allow
    uint8[n] or [0] -> heaps int64[nchunks, k] of the best score keys per chunk of blocks
    (filled with KEY_NONE by the caller). Byte-major blocks let the row loop vectorise
    (a gather per 8 rows): 25.9 ms p50 against 39.3 ms row by row for 1M rows of 110
    bytes (Zen 3, 2 threads, bench/test_bench_codecs.py), the same sums (each row's bytes
    still added in order). A score's bits are read through a one-element view: a view
    of the whole accumulator stopped the vectorisation (39.7 ms)."""
    nb, nbytes, width = blocks.shape
    nchunks = heaps.shape[0]
    use_mask = allow.shape[0] > 0
    for c in prange(nchunks):
        lo, hi = block_bounds(c, nchunks, nb)
        heap = heaps[c]
        acc = np.empty(width, dtype=np.float32)
        cell = np.empty(1, dtype=np.float32)  # a score's bits, read through a view
        cell_bits = cell.view(np.int32)
        for b in range(lo, hi):
            acc[:] = 0
            for t in range(nbytes):
                table = lut[t]
                column = blocks[b, t]
                for i in range(width):
                    acc[i] += table[column[i]]
            base = b * width
            for i in range(min(width, n - base)):
                if use_mask and not allow[base + i]:
                    continue
                cell[0] = acc[i]
                key = score_key(cell_bits[0], base + i)
                if key < heap[0]:
                    heap_replace_top(heap, key)
