"""Table scan over bit-plane transform codes (edgevec.codecs.transform_pack): a row's
score is the sum of one float32 table entry per code byte, added in byte order (the same
float32 operations as the NumPy reference, so the same bits), its top-k kept in a heap
per chunk of rows, keyed by (score's bits, row): every entry is >= 0, so a score's bits
order like its value; ties go to the lower row.

`allow` is a uint8 row mask (1 = eligible) or an empty array for "all rows".
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._intrinsics import block_bounds
from .topk import heap_replace_top, score_key


@njit(cache=True, parallel=True, nogil=True)
def lut_topk(codes, lut, allow, heaps):
    """codes uint8[n, B], lut float32[B, 256] (entries >= 0), allow uint8[n] or [0] ->
    heaps int64[nchunks, k] of the best score keys per chunk (filled with KEY_NONE by
    the caller)."""
    n, nbytes = codes.shape
    nchunks = heaps.shape[0]
    use_mask = allow.shape[0] > 0
    for c in prange(nchunks):
        lo, hi = block_bounds(c, nchunks, n)
        heap = heaps[c]
        cell = np.zeros(1, dtype=np.float32)
        cell_bits = cell.view(np.int32)
        for i in range(lo, hi):
            if use_mask and not allow[i]:
                continue
            s = np.float32(0)
            for t in range(nbytes):
                s += lut[t, codes[i, t]]
            cell[0] = s
            key = score_key(cell_bits[0], i)
            if key < heap[0]:
                heap_replace_top(heap, key)
