"""Postings of one segment: which rows hold each term, how often, and how long each row
is. Built from the analyzed terms of a batch of rows; read back by the BM25 scan.

Layout (the lex.* sections of a segment, formats/SPEC.md):
- terms: the segment's distinct terms, sorted by their UTF-8 bytes (a string table);
- df: uint32 per term, the number of rows holding it;
- offsets: uint64 per term + 1, byte offsets into `data`;
- data: per term, its rows ascending, each as LEB128 varints (row - previous row, with
  -1 before the first; then the term frequency): rows of a common term are near each
  other (gaps of a byte), rare terms take 2-3 bytes a row;
- norms: one byte per row, the row's length in terms (SmallFloat below);
- totals: rows and the sum of row lengths, so BM25's N and avgdl are sums over
  segments at query time and `add` never rewrites anything global.

Row length as a byte (SmallFloat, after Lucene's: exact where it matters, ~6% steps
beyond): lengths below 32 are exact; above, the code keeps the exponent and four bits
below the leading one; lengths of 2**19 terms or more share code 255.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

NORM_EXACT = 16  # codes below this are the length itself


def length_to_norm(lengths: np.ndarray) -> np.ndarray:
    """uint8 codes of row lengths (ints >= 0)."""
    v = np.asarray(lengths, dtype=np.int64)
    out = np.empty(v.shape, dtype=np.uint8)
    small = v < NORM_EXACT
    out[small] = v[small]
    big = v[~small]
    e = np.floor(np.log2(np.maximum(big, 1))).astype(np.int64)
    e = np.where((1 << (e + 1)) <= big, e + 1, e)  # float log2 can be a hair short
    e = np.where((1 << e) > big, e - 1, e)
    m = (big >> (e - 4)) - 16
    code = NORM_EXACT + (e - 4) * 16 + m
    out[~small] = np.minimum(code, 255)
    return out


def norm_table() -> np.ndarray:
    """float32[256]: the (smallest) length each code stands for."""
    codes = np.arange(256)
    e = (codes - NORM_EXACT) // 16 + 4
    m = (codes - NORM_EXACT) % 16
    return np.where(codes < NORM_EXACT, codes, (16 + m) << np.maximum(e - 4, 0)).astype(
        np.float32)


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """LEB128 bytes each non-negative int takes."""
    values = np.asarray(values, dtype=np.uint64)
    nbytes = np.ones(len(values), dtype=np.int64)
    for shift in range(7, 64, 7):
        nbytes += values >= (np.uint64(1) << np.uint64(shift))
    return nbytes


def _varints(values: np.ndarray) -> np.ndarray:
    """LEB128 bytes of non-negative ints, in order."""
    values = np.asarray(values, dtype=np.uint64)
    nbytes = _varint_sizes(values)
    out = np.empty(int(nbytes.sum()), dtype=np.uint8)
    start = np.concatenate([[0], np.cumsum(nbytes)[:-1]])
    rest = values.copy()
    for j in range(int(nbytes.max(initial=0))):
        live = nbytes > j
        byte = (rest[live] & np.uint64(0x7F)).astype(np.uint8)
        more = nbytes[live] > j + 1
        out[start[live] + j] = byte | (more.astype(np.uint8) << 7)
        rest[live] >>= np.uint64(7)
    return out


@dataclass(frozen=True)
class Postings:
    terms: list[str]
    df: np.ndarray        # uint32 [T]
    offsets: np.ndarray   # uint64 [T + 1]
    data: np.ndarray      # uint8 [bytes]
    norms: np.ndarray     # uint8 [n]
    totals: np.ndarray    # uint64 [2]: rows, sum of lengths

    @classmethod
    def build(cls, term_lists: list[list[str]]) -> "Postings":
        """From the terms of each row (a row may have none)."""
        n = len(term_lists)
        lengths = np.fromiter(map(len, term_lists), dtype=np.int64, count=n)
        flat = list(chain.from_iterable(term_lists))
        names = list(dict.fromkeys(flat))  # distinct terms in first-seen order (C loops)
        vocab = dict(zip(names, range(len(names))))
        tid = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
        # order terms by UTF-8 bytes (str order would differ beyond the BMP)
        order = sorted(range(len(names)), key=lambda i: names[i].encode("utf-8"))
        rank = np.empty(len(names), dtype=np.int64)
        rank[order] = np.arange(len(names))
        tid = rank[tid] if len(tid) else tid
        # (term, row) pairs with their counts, sorted by term, then row
        keys, tf = np.unique(tid * max(n, 1) + row_of, return_counts=True)
        return cls._encode([names[i] for i in order], keys // max(n, 1), keys % max(n, 1),
                           tf, n)

    @classmethod
    def merge(cls, parts: Sequence[tuple["Postings", np.ndarray]]) -> "Postings":
        """The postings of some rows of several segments as one segment, without
        analysing any text again: parts[i] = (segment i's postings, the local rows it
        keeps, ascending); kept rows are renumbered consecutively in that order, terms no
        kept row holds are dropped. The postings must be verified (V7) first."""
        term_lists = [p.terms if isinstance(p.terms, list) else p.terms.all() for p, _ in parts]
        merged = sorted(set().union(*term_lists), key=lambda t: t.encode("utf-8"))
        lookup = dict(zip(merged, range(len(merged))))
        terms, rows, freqs = [], [], []
        start = 0
        for (p, keep), names in zip(parts, term_lists):
            new_row = np.full(len(p.norms), -1, dtype=np.int64)
            new_row[keep] = np.arange(start, start + len(keep))
            start += len(keep)
            values = decode_varints(p.data)
            gaps, tf = values[0::2], values[1::2]
            df = p.df.astype(np.int64)
            ends = np.cumsum(gaps)
            first = np.cumsum(df) - df  # each term's first posting
            before = np.where(first > 0, ends[np.maximum(first - 1, 0)], 0) if len(ends) \
                else np.zeros(len(df), np.int64)
            local = ends - np.repeat(before, df) - 1
            mapped = new_row[local]
            kept = mapped >= 0
            term_of = np.fromiter(map(lookup.__getitem__, names), dtype=np.int64,
                                  count=len(names))
            terms.append(np.repeat(term_of, df)[kept])
            rows.append(mapped[kept])
            freqs.append(tf[kept])
        term = np.concatenate(terms) if terms else np.zeros(0, np.int64)
        order = np.argsort(term, kind="stable")  # rows ascend within a term already
        term, row = term[order], np.concatenate(rows)[order] if rows else term
        tf = np.concatenate(freqs)[order] if freqs else term
        held = np.bincount(term, minlength=len(merged)) > 0
        renumber = np.cumsum(held) - 1
        return cls._encode([t for t, h in zip(merged, held.tolist()) if h], renumber[term],
                           row, tf, start)

    @classmethod
    def _encode(cls, names: list[str], p_term: np.ndarray, p_row: np.ndarray,
                tf: np.ndarray, n: int) -> "Postings":
        """Postings from (term index, row, frequency) triples sorted by term, then row,
        over `n` rows; row lengths are the sums of their frequencies."""
        df = np.bincount(p_term, minlength=len(names)).astype(np.uint32)
        first = np.concatenate([[True], p_term[1:] != p_term[:-1]]) if len(p_term) else \
            np.zeros(0, bool)
        gaps = np.where(first, p_row + 1, np.diff(p_row, prepend=0))  # first: row - (-1)
        pieces = np.empty(2 * len(gaps), dtype=np.int64)
        pieces[0::2], pieces[1::2] = gaps, tf
        data = _varints(pieces)
        # byte offset of each term's first posting
        sizes = _varint_sizes(pieces)
        per_posting = sizes[0::2] + sizes[1::2]  # bytes of each (gap, tf) pair
        term_bytes = np.bincount(p_term, weights=per_posting, minlength=len(names))
        offsets = np.zeros(len(names) + 1, dtype=np.uint64)
        np.cumsum(term_bytes.astype(np.uint64), out=offsets[1:])
        lengths = np.bincount(p_row, weights=tf, minlength=n).astype(np.int64) if n else \
            np.zeros(0, np.int64)
        return cls(list(names), df, offsets, data, length_to_norm(lengths),
                   np.array([n, int(lengths.sum())], dtype=np.uint64))

    def find(self, term: str) -> int:
        """Index of `term` in the sorted term table, or -1 (binary search on UTF-8 bytes)."""
        key = term.encode("utf-8")
        lo, hi = 0, len(self.terms)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.terms[mid].encode("utf-8") < key:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self.terms) and self.terms[lo] == term else -1

    def rows_of(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, term frequencies) of term index t, decoded (NumPy; for tests and tools)."""
        chunk = self.data[int(self.offsets[t]):int(self.offsets[t + 1])]
        values = decode_varints(chunk)
        return np.cumsum(values[0::2]) - 1, values[1::2]


def decode_varints(chunk: np.ndarray) -> np.ndarray:
    """LEB128 bytes -> int64 values, vectorised. A value running past the chunk, or
    longer than 9 bytes (63 bits), is a ValueError."""
    chunk = np.asarray(chunk, dtype=np.uint8)
    if not len(chunk):
        return np.zeros(0, np.int64)
    last = chunk < 0x80
    if not last[-1]:
        raise ValueError("varint stream ends inside a value")
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1])
    width = ends - starts + 1
    if width.max() > 9:
        raise ValueError("a varint longer than 63 bits")
    pos = np.arange(len(chunk)) - np.repeat(starts, width)
    parts = (chunk.astype(np.int64) & 0x7F) << (7 * pos)
    return np.add.reduceat(parts, starts)
