"""Top-k selection over int64 keys.

A key packs a result so that smaller is better and ties go to the lower row:
Hamming distance d -> (d << 31) | row; int32 similarity s -> ((2**31 - 1 - s) << 31) | row.
Sorting keys therefore orders results by score, then row id, so results do not depend on
how rows were split between threads. Heaps are max-heaps of keys (the worst kept result
on top), filled with KEY_NONE.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._intrinsics import ROW_BITS, ROW_MASK, SCORE_BIAS


@njit(cache=True, nogil=True, inline="always")
def hamming_key(d, row):
    return (np.int64(d) << ROW_BITS) | np.int64(row)


@njit(cache=True, nogil=True, inline="always")
def score_key(s, row):
    return ((SCORE_BIAS - np.int64(s)) << ROW_BITS) | np.int64(row)


@njit(cache=True, nogil=True)
def heap_replace_top(heap, key):
    """Replace the largest key of max-heap `heap` (int64[k]) by `key` and restore order."""
    k = heap.shape[0]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= k:
            break
        right = left + 1
        child = left
        if right < k and heap[right] > heap[left]:
            child = right
        if heap[child] <= key:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = key


@njit(cache=True, nogil=True)
def select_smallest(buf, n, k):
    """Move the k smallest of the distinct keys buf[:n] into buf[:k] (in no order), in
    place (quickselect, middle-of-three pivots); returns the largest of them."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        a, b, c = buf[lo], buf[mid], buf[hi]
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if k - 1 <= j:
            hi = j
        elif k - 1 >= i:
            lo = i
        else:
            break
    top = buf[0]
    for i in range(1, k):
        top = max(top, buf[i])
    return top


def split_hamming_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (keys >> ROW_BITS).astype(np.int32), (keys & ROW_MASK).astype(np.int64)


def split_score_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (SCORE_BIAS - (keys >> ROW_BITS)).astype(np.int32), (keys & ROW_MASK).astype(np.int64)
