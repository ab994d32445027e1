"""BM25 over the postings of one or more segments.

score(row) = sum over query terms t of  qtf(t) * idf(t) * tf /
             (tf + k1 * (1 - b + b * length(row) / avgdl)),
idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))   (Lucene's, never negative),

with N, df and avgdl summed over every segment at query time (deleted rows keep counting
until compaction, as in Lucene and Tantivy), the row length read from its one-byte norm,
and qtf the times t appears in the query. Ties go to the lower row. Like Lucene since
version 8 (and bm25s's "lucene" method), the constant factor (k1 + 1) is left out: it
changes no ranking, and scores stay comparable with theirs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError, InvalidInput
from ..search import ENGINE, best_k
from ..validate import check_k, check_number
from ..storage.postings import Postings, decode_varints, norm_table

_NORMS = norm_table()


@dataclass(frozen=True)
class BM25:
    k1: float = 1.2
    b: float = 0.75

    def __post_init__(self) -> None:
        check_number(self.k1, "k1", low=0, high=1e6)  # the file's limit (SPEC)
        check_number(self.b, "b", low=0, high=1)


def idf(n: int, df: np.ndarray) -> np.ndarray:
    df = np.asarray(df, dtype=np.float64)
    return np.log1p((n - df + 0.5) / (df + 0.5))


def search(segments: Sequence[Postings], query_terms: Sequence[str], k: int, *,
           params: BM25 = BM25(), row_starts: Sequence[int] | None = None,
           allow: Sequence[np.ndarray | None] | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows for analyzed `query_terms` -> (scores float32[k'], global rows
    int64[k']), score descending, ties by lower row; rows with no query term never come
    back. `allow[i]`: a bool mask over segment i's rows (None = all)."""
    k = check_k(k)
    if row_starts is None:
        row_starts = np.cumsum([0] + [int(p.totals[0]) for p in segments])[:-1]
    counts = Counter(query_terms)
    terms = sorted(counts, key=lambda t: t.encode("utf-8"))  # a fixed summation order
    n = sum(int(p.totals[0]) for p in segments)
    total_len = sum(int(p.totals[1]) for p in segments)
    if not terms or n == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    found = [[p.find(t) for t in terms] for p in segments]
    df = np.zeros(len(terms), dtype=np.int64)  # summed over the segments that hold a term
    for p, f in zip(segments, found):
        for j, i in enumerate(f):
            if i >= 0:
                if not 0 < int(p.df[i]) <= int(p.totals[0]):
                    raise FormatError(f"lexical statistics are damaged: a term's document "
                                      f"count is {int(p.df[i])} in a segment of "
                                      f"{int(p.totals[0])} rows")
                df[j] += int(p.df[i])
    weight = np.array([counts[t] for t in terms]) * idf(n, df)
    denom = (params.k1 * (1 - params.b + params.b * _NORMS / max(total_len / n, 1e-9))
             ).astype(np.float32)
    scores, rows = [], []
    for s, (p, f) in enumerate(zip(segments, found)):
        present = [j for j, i in enumerate(f) if i >= 0]
        if not present:
            continue
        sc, r = _segment(p, np.array([f[j] for j in present], dtype=np.int64),
                         weight[present].astype(np.float32), denom,
                         None if allow is None else allow[s])
        scores.append(sc)
        rows.append(r + int(row_starts[s]))
    if not rows:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return best_k(np.concatenate(scores), np.concatenate(rows), k)


_DAMAGED = ("lexical postings are damaged (a value runs past its term's bytes or names a "
            "row past the segment)")


def _segment(p: Postings, terms: np.ndarray, weights: np.ndarray, denom: np.ndarray,
             allow: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(p.norms)
    if allow is not None and len(allow) != n:
        raise InvalidInput(f"the row mask has {len(allow)} entries for {n} rows")
    acc = np.zeros(n, dtype=np.float32)
    size = sum(int(p.offsets[t + 1]) - int(p.offsets[t]) for t in terms.tolist()
               if 0 <= int(p.offsets[t]) <= int(p.offsets[t + 1]) <= len(p.data))
    if ENGINE.use_numpy(size // 8):  # a new process: not worth loading Numba (ScanEngine)
        start = time.perf_counter()
        rows = _accumulate_numpy(p, terms, weights, denom, acc)
        ENGINE.numpy_seconds += time.perf_counter() - start
    else:
        from ..kernels.bm25 import bm25_accumulate
        touched = np.empty(n, dtype=np.int32)
        count = bm25_accumulate(p.data, p.offsets, terms, weights, p.norms, denom, acc,
                                touched)
        if count < 0:
            raise FormatError(_DAMAGED)
        rows = np.sort(touched[:count]).astype(np.int64)
    if allow is not None:
        rows = rows[np.asarray(allow, dtype=bool)[rows]]
    return acc[rows], rows


def _accumulate_numpy(p: Postings, terms: np.ndarray, weights: np.ndarray,
                      denom: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """What bm25_accumulate does, in NumPy (the same float32 operations in the same
    order, so the same scores): returns the touched rows, ascending."""
    n = len(acc)
    touched = []
    for t, w in zip(terms.tolist(), weights):
        a, b = int(p.offsets[t]), int(p.offsets[t + 1])
        if not 0 <= a <= b <= len(p.data):
            raise FormatError(_DAMAGED)
        try:
            values = decode_varints(p.data[a:b])
        except ValueError:
            raise FormatError(_DAMAGED) from None
        gaps, tf = values[0::2], values[1::2]
        if len(gaps) != len(tf) or (gaps <= 0).any() or (tf <= 0).any():
            raise FormatError(_DAMAGED)
        rows = np.cumsum(gaps) - 1
        if len(rows) and rows[-1] >= n:
            raise FormatError(_DAMAGED)
        f = tf.astype(np.float32)
        acc[rows] += w * f / (f + denom[p.norms[rows]])
        touched.append(rows)
    return np.unique(np.concatenate(touched)) if touched else np.zeros(0, np.int64)
