"""Low-level helpers shared by the kernels.

`popcount64` lowers to LLVM's `ctpop`, which becomes the `popcnt` instruction (or a
vectorised equivalent) on x86-64. With NUMBA_DISABLE_JIT=1 it is a plain Python function,
so every kernel can be stepped through in a debugger.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

# Sentinel of the top-k heaps: larger than every real key.
KEY_NONE = np.int64(np.iinfo(np.int64).max)
ROW_BITS = 31  # kernels take at most 2**31 rows per call; the search layer splits larger
ROW_MASK = np.int64((1 << ROW_BITS) - 1)
SCORE_BIAS = np.int64(0x7FFFFFFF)

if numba.config.DISABLE_JIT:
    def popcount64(x):
        return int(x).bit_count()
else:
    @intrinsic
    def popcount64(typingctx, x):
        if not isinstance(x, types.Integer):
            return None
        sig = types.uint64(types.uint64)

        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])
        return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def block_bounds(b, nblocks, n):
    """Rows [lo, hi) of block b when n rows are cut into nblocks near-equal blocks."""
    size = (n + nblocks - 1) // nblocks
    lo = min(n, b * size)
    return lo, min(n, lo + size)
