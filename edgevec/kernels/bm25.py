"""BM25 accumulation over varint postings (edgevec.storage.postings), term at a time.

For each query term, its postings are decoded (LEB128 row gaps and term frequencies) and
each row's score grows by weight * tf / (tf + denom[norm of the row]); rows are recorded
the first time they score. Terms go in the caller's order, so every row's sum is
accumulated in the same order whatever else is searched: scores are reproducible.

The k best rows are then picked from the touched rows alone (a max-heap of keys: the
score's float32 bits, which order positive floats as the floats, then the row), skipping
rows the caller's mask excludes. The kernel checks what it decodes as it goes (a value
running past the term's bytes or 64 bits, a row at or past n): postings come from a
file, and a bad byte must become an error, not a read out of bounds. It returns the
number of rows touched, or -1 for damage. It holds no Python lock, so segments can be
scored in threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .topk import heap_replace_top, score_key


@njit(cache=True, nogil=True, inline="always")
def _varint(data, pos, end):
    """(value, next position), or (-1, -1) when the value runs past `end` or 63 bits."""
    value = np.int64(0)
    shift = 0
    while pos < end:
        b = np.int64(data[pos])
        pos += 1
        if shift > 56 and (b >> (63 - shift)) != 0:
            return np.int64(-1), -1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    return np.int64(-1), -1


@njit(cache=True, nogil=True, inline="always")
def _accumulate(data, offsets, terms, weights, norms, denom, acc, touched):
    """Term at a time into acc -> (rows touched, listed in touched[:count]; False when
    the postings are damaged)."""
    n = norms.shape[0]
    count = 0
    for qi in range(terms.shape[0]):
        t = terms[qi]
        w = weights[qi]
        pos = np.int64(offsets[t])  # an offset of 2**63 or more turns negative here
        end = np.int64(offsets[t + 1])
        if pos < 0 or pos > end or end > data.shape[0]:
            return count, False
        row = np.int64(-1)
        while pos < end:
            gap, pos = _varint(data, pos, end)
            if gap <= 0:
                return count, False
            tf, pos = _varint(data, pos, end)
            if tf <= 0:
                return count, False
            row += gap
            if row >= n:
                return count, False
            f = np.float32(tf)
            if acc[row] == 0:  # every term weight and tf is > 0: a scored row is > 0
                if count == n:  # only if weights were not all > 0
                    return count, False
                touched[count] = row
                count += 1
            acc[row] += w * f / (f + denom[norms[row]])
    return count, True


@njit(cache=True, nogil=True)
def bm25_topk(data, offsets, terms, weights, norms, denom, acc, acc_bits, touched, allow,
              heap):
    """data uint8[bytes], offsets uint64[T + 1], terms int64[q] (indexes < T), weights
    float32[q] (query tf * idf, > 0), norms uint8[n], denom float32[256] (k1 * (1 - b + b *
    length / avgdl) per norm code), acc float32[>= n] (zeros) and acc_bits (the same
    memory as int32), touched int32[>= n], allow uint8[n] or [0] (all rows), heap
    int64[k] (filled with KEY_NONE) -> rows touched, or -1 when the postings are damaged;
    heap holds the score keys (topk.score_key of the score's bits) of the k best allowed
    rows. acc is all zeros again on return, so the caller can keep it for the next call
    (the cost stays that of the rows touched, not of n)."""
    count, sound = _accumulate(data, offsets, terms, weights, norms, denom, acc, touched)
    use_mask = allow.shape[0] > 0
    for i in range(count if sound else 0):
        row = touched[i]
        if use_mask and not allow[row]:
            continue
        key = score_key(acc_bits[row], row)
        if key < heap[0]:
            heap_replace_top(heap, key)
    for i in range(count):
        acc[touched[i]] = 0
    return count if sound else -1


@njit(cache=True, nogil=True)
def check_postings(data, offsets, df, lengths):
    """Decode every posting of a segment (verify): 0 when sound, else 1 + the index of the
    first bad term (offsets out of order or past the data, a value running past its
    term's bytes, a row gap or tf of 0, a row >= n, a posting count other than its df),
    or -1 when the offsets do not start at 0 and end at the data's length. lengths
    int64[n] (zeros) receives each row's sum of term frequencies."""
    t_count = df.shape[0]
    n = lengths.shape[0]
    if np.int64(offsets[0]) != 0 or np.int64(offsets[t_count]) != data.shape[0]:
        return -1
    for t in range(t_count):
        pos = np.int64(offsets[t])
        end = np.int64(offsets[t + 1])
        if pos < 0 or pos > end or end > data.shape[0]:
            return t + 1
        row = np.int64(-1)
        count = 0
        while pos < end:
            gap, pos = _varint(data, pos, end)
            if gap <= 0:
                return t + 1
            tf, pos = _varint(data, pos, end)
            if tf <= 0:
                return t + 1
            row += gap
            if row >= n:
                return t + 1
            lengths[row] += tf
            count += 1
        if count != np.int64(df[t]):
            return t + 1
    return 0


@njit(cache=True, nogil=True, inline="always")
def _compare(data, a, b, keys, ka, kb):
    """Sign of data[a:b] - keys[ka:kb], compared as byte strings."""
    for j in range(min(b - a, kb - ka)):
        x = data[a + j]
        y = keys[ka + j]
        if x != y:
            return -1 if x < y else 1
    if b - a == kb - ka:
        return 0
    return 1 if b - a > kb - ka else -1  # the shorter, a prefix of the other, first


@njit(cache=True, nogil=True)
def find_terms(offsets, data, keys, key_offsets, out):
    """A term table sorted by its UTF-8 bytes (offsets uint64[T + 1], data uint8), query
    terms as bytes keys uint8 with key_offsets int64[q + 1] -> out int64[q]: each term's
    index in the table, or -1 (a binary search per term). Returns 0, or -1 when an offset
    it reads is out of order or past the data (a damaged table): out is not complete
    then."""
    n = data.shape[0]
    count = offsets.shape[0] - 1
    for i in range(out.shape[0]):
        ka = key_offsets[i]
        kb = key_offsets[i + 1]
        lo = 0
        hi = count
        while lo < hi:
            mid = (lo + hi) >> 1
            a = np.int64(offsets[mid])  # an offset of 2**63 or more turns negative here
            b = np.int64(offsets[mid + 1])
            if a < 0 or a > b or b > n:
                return -1
            if _compare(data, a, b, keys, ka, kb) < 0:
                lo = mid + 1
            else:
                hi = mid
        out[i] = -1
        if lo < count:
            a = np.int64(offsets[lo])
            b = np.int64(offsets[lo + 1])
            if a < 0 or a > b or b > n:
                return -1
            if _compare(data, a, b, keys, ka, kb) == 0:
                out[i] = lo
    return 0
