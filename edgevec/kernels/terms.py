"""Tokens and postings of a batch of texts, compiled: what edgevec.lexical.Analyzer and
storage.postings.Postings.build do per token in Python, at a few nanoseconds a byte.

`scan_terms` cuts the concatenated UTF-8 bytes of many rows into tokens and gives each
distinct token an id through an open-addressing hash table (64-bit FNV-1a, the bytes
compared on every hash match, so ids are exact). A row is either *raw* (lowercased ASCII
text: tokens are runs of [a-z0-9_], those of `max_bytes` or more dropped) or *final*
(terms the Python analyzer already produced, separated by spaces; a newline ends
every row); the same bytes
in a raw and a final row are different tokens, since only raw tokens still go through
the stop list and the stemmer. `postings_of` then turns (token id, row) pairs, with a map
from token ids to sorted term indexes (-1: dropped), into varint postings laid out as
storage.postings documents: terms in order, rows ascending, LEB128 (gap, tf) pairs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_FINAL_SALT = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = -1


@njit(cache=True, nogil=True, inline="always")
def _is_word(b):
    return (97 <= b <= 122) or (48 <= b <= 57) or b == 95  # a-z 0-9 _ (lowercased text)


@njit(cache=True, nogil=True)
def _grow(slots, slot_hash):
    """The table twice the size, holding the same ids (rehashed)."""
    bigger = np.full(len(slots) * 2, _EMPTY, dtype=np.int32)
    bigger_hash = np.zeros(len(slots) * 2, dtype=np.uint64)
    mask = np.uint64(len(bigger) - 1)
    for s in range(len(slots)):
        if slots[s] != _EMPTY:
            j = slot_hash[s] & mask
            while bigger[j] != _EMPTY:
                j = (j + np.uint64(1)) & mask
            bigger[j] = slots[s]
            bigger_hash[j] = slot_hash[s]
    return bigger, bigger_hash


@njit(cache=True, nogil=True)
def _scan_rows(buf, starts, final, max_bytes, sep, r, tok_term, tok_row, n_tok, arena,
               t_off, t_final, n_terms, slots, slot_hash):
    """Tokens of rows r, r + 1, ... while the arrays have room for a whole row -> (the
    next row, tokens, distinct tokens). A separate function from scan_terms, which grows
    the arrays between calls: arrays reassigned inside a loop made every token 3x
    slower."""
    n = len(starts) - 1
    mask = np.uint64(len(slots) - 1)
    while r < n:
        i = starts[r]
        end = starts[r + 1]
        room = (end - i) // 2 + 1  # the most tokens a row can hold
        if (t_off[n_terms] + end - i > len(arena) or n_terms + room + 1 > len(t_off)
                or 2 * (n_terms + room) > len(slots) or n_tok + room > len(tok_term)):
            break
        is_final = final[r]
        row_sep = sep[256:] if is_final else sep[:256]
        while i < end:
            if row_sep[buf[i]]:
                i += 1
                continue
            a = i
            h = _FNV_OFFSET
            while i < end:
                b = buf[i]
                if row_sep[b]:
                    break
                h = (h ^ np.uint64(b)) * _FNV_PRIME
                i += 1
            length = i - a
            if not is_final and length >= max_bytes:
                continue
            if is_final:
                h ^= _FINAL_SALT
            j = h & mask
            found = _EMPTY
            while slots[j] != _EMPTY:
                if slot_hash[j] == h:
                    t = slots[j]
                    s = t_off[t]
                    if t_off[t + 1] - s == length and t_final[t] == is_final:
                        same = True
                        for x in range(length):
                            if arena[s + x] != buf[a + x]:
                                same = False
                                break
                        if same:
                            found = t
                            break
                j = (j + np.uint64(1)) & mask
            if found == _EMPTY:
                used = t_off[n_terms]
                arena[used:used + length] = buf[a:i]
                t_off[n_terms + 1] = used + length
                t_final[n_terms] = is_final
                found = n_terms
                slots[j] = found
                slot_hash[j] = h
                n_terms += 1
            tok_term[n_tok] = found
            tok_row[n_tok] = r
            n_tok += 1
        r += 1
    return r, n_tok, n_terms


@njit(cache=True, nogil=True)
def _bigger(a, size):
    out = np.zeros(size, dtype=a.dtype)
    out[:len(a)] = a
    return out


@njit(cache=True, nogil=True)
def scan_terms(buf, starts, final, max_bytes):
    """buf uint8[bytes], starts int64[n + 1] (row r is buf[starts[r]:starts[r + 1]]),
    final bool[n], max_bytes int -> (token ids int32[tokens], rows int32[tokens], the
    distinct tokens' bytes uint8[b] and their offsets int64[terms + 1] into them, final
    flags bool[terms]), tokens in row order, ids in order of first appearance.

    The table keeps each slot's hash next to its id, and the distinct tokens' bytes sit
    in one small arena, so a probe touches cached memory."""
    n = len(starts) - 1
    sep = np.ones(512, dtype=np.bool_)  # separators in raw rows (0..255), final rows (256..)
    for b in range(256):
        sep[b] = not _is_word(b)
        sep[256 + b] = b == 32 or b == 10
    tok_term = np.empty(len(buf) // 8 + 1024, dtype=np.int32)
    tok_row = np.empty(len(tok_term), dtype=np.int32)
    arena = np.empty(1 << 16, dtype=np.uint8)
    t_off = np.zeros(1 << 13, dtype=np.int64)
    t_final = np.zeros(1 << 13, dtype=np.bool_)
    slots = np.full(1 << 14, _EMPTY, dtype=np.int32)
    slot_hash = np.zeros(1 << 14, dtype=np.uint64)
    r = n_tok = n_terms = 0
    while True:
        r, n_tok, n_terms = _scan_rows(buf, starts, final, max_bytes, sep, r, tok_term,
                                       tok_row, n_tok, arena, t_off, t_final, n_terms,
                                       slots, slot_hash)
        if r == n:
            break
        size = starts[r + 1] - starts[r]
        room = size // 2 + 1
        if t_off[n_terms] + size > len(arena):
            arena = _bigger(arena, max(2 * len(arena), t_off[n_terms] + size))
        if n_terms + room + 1 > len(t_off):
            t_off = _bigger(t_off, max(2 * len(t_off), n_terms + room + 1))
            t_final = _bigger(t_final, len(t_off))
        if n_tok + room > len(tok_term):
            tok_term = _bigger(tok_term, max(2 * len(tok_term), n_tok + room))
            tok_row = _bigger(tok_row, len(tok_term))
        while 2 * (n_terms + room) > len(slots):
            slots, slot_hash = _grow(slots, slot_hash)
    return (tok_term[:n_tok].copy(), tok_row[:n_tok].copy(), arena[:t_off[n_terms]].copy(),
            t_off[:n_terms + 1].copy(), t_final[:n_terms].copy())


@njit(cache=True, nogil=True, inline="always")
def _put_varint(out, pos, v):
    while v >= 128:
        out[pos] = np.uint8((v & 127) | 128)
        v >>= 7
        pos += 1
    out[pos] = np.uint8(v)
    return pos + 1


@njit(cache=True, nogil=True)
def postings_of(tok_term, tok_row, remap, n_rows, n_terms):
    """Tokens (ids, rows ascending) and remap int64[ids] -> term index in [0, n_terms) or
    -1 (dropped) -> (df uint32[n_terms], offsets uint64[n_terms + 1], data uint8[bytes],
    lengths int64[n_rows]: kept tokens per row)."""
    lengths = np.zeros(n_rows, dtype=np.int64)
    last_row = np.full(n_terms, -1, dtype=np.int32)
    last_at = np.zeros(n_terms, dtype=np.int32)
    p_term = np.empty(len(tok_term), dtype=np.int32)
    p_row = np.empty(len(tok_term), dtype=np.int32)
    p_tf = np.empty(len(tok_term), dtype=np.int32)
    df = np.zeros(n_terms, dtype=np.int64)
    n_p = 0
    for i in range(len(tok_term)):
        t = remap[tok_term[i]]
        if t < 0:
            continue
        r = tok_row[i]
        lengths[r] += 1
        if last_row[t] == r:
            p_tf[last_at[t]] += 1
        else:
            last_row[t] = r
            last_at[t] = n_p
            p_term[n_p] = t
            p_row[n_p] = r
            p_tf[n_p] = 1
            df[t] += 1
            n_p += 1
    # counting sort by term (stable: rows stay ascending), then the bytes, each posting
    # at most 10 (a gap and a frequency below 2**32: 5 bytes each)
    first = np.zeros(n_terms + 1, dtype=np.int64)
    for t in range(n_terms):
        first[t + 1] = first[t] + df[t]
    fill = first[:n_terms].copy()
    order = np.empty(n_p, dtype=np.int32)
    for p in range(n_p):
        t = p_term[p]
        order[fill[t]] = p
        fill[t] += 1
    offsets = np.zeros(n_terms + 1, dtype=np.uint64)
    data = np.empty(10 * n_p, dtype=np.uint8)
    pos = 0
    for t in range(n_terms):
        prev = -1
        for q in range(first[t], first[t + 1]):
            p = order[q]
            row = np.int64(p_row[p])
            pos = _put_varint(data, pos, row - prev)
            pos = _put_varint(data, pos, np.int64(p_tf[p]))
            prev = row
        offsets[t + 1] = pos
    return df.astype(np.uint32), offsets, data[:pos].copy(), lengths


@njit(cache=True, nogil=True)
def sort_keys(arena, offsets, words):
    """uint64 [words, T]: each token's first 8 * words bytes as big-endian words, zero
    padded (tokens hold no zero byte, so the keys sort like the bytes: np.lexsort)."""
    n = len(offsets) - 1
    keys = np.zeros((words, n), dtype=np.uint64)
    for t in range(n):
        a = offsets[t]
        for x in range(offsets[t + 1] - a):
            w = x >> 3
            keys[w, t] |= np.uint64(arena[a + x]) << np.uint64(56 - 8 * (x & 7))
    return keys


@njit(cache=True, nogil=True)
def gather(arena, offsets, ids):
    """The bytes of tokens `ids`, each followed by a newline."""
    size = 0
    for i in ids:
        size += offsets[i + 1] - offsets[i] + 1
    out = np.empty(size, dtype=np.uint8)
    pos = 0
    for i in ids:
        a, b = offsets[i], offsets[i + 1]
        out[pos:pos + b - a] = arena[a:b]
        pos += b - a
        out[pos] = 10
        pos += 1
    return out
