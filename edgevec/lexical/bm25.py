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

import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError, InvalidInput, StringTableError
from ..search import ENGINE, best_k
from ..validate import check_k, check_number, check_threads
from ..storage.postings import Postings, decode_varints, norm_table
from ..storage.strings import StringTable

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


def statistics(segments: Sequence[Postings], query_terms: Sequence[str]
               ) -> tuple[int, int, dict[str, int]]:
    """(N, total length, {term: df}) of `segments` for the distinct `query_terms`: what
    several indexes searched as one sum before any of them scores (a served shard set)."""
    terms = sorted(set(query_terms))
    n, total_len, df = _statistics(segments, terms, [find(p, terms) for p in segments])
    return n, total_len, {t: int(d) for t, d in zip(terms, df)}


def find(p: Postings, terms: list[str]) -> list[int]:
    """The index of each of `terms` in p's term table, or -1: by the Numba kernel once
    the process uses them (search.ScanEngine), else by Postings.find (the same binary
    search on the UTF-8 bytes, in Python: ~15 us a term, what made a 3-term query over
    2 segments spend 100 us before any scoring)."""
    table = p.terms
    if not terms or not isinstance(table, StringTable) or not (
            ENGINE.numba_loaded or ENGINE.mode == "numba"):
        return [p.find(t) for t in terms]
    from ..kernels.bm25 import find_terms
    raw = [t.encode("utf-8") for t in terms]
    ends = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in raw], out=ends[1:])
    out = np.empty(len(raw), dtype=np.int64)
    if find_terms(table.offsets, table.data, np.frombuffer(b"".join(raw), np.uint8), ends,
                  out) < 0:
        raise StringTableError("the lexical term table is damaged (an offset out of order "
                               "or past its bytes)", path=table.path, offset=table.where)
    return out.tolist()


def _statistics(segments: Sequence[Postings], terms: list[str], found: list
                ) -> tuple[int, int, np.ndarray]:
    n = sum(int(p.totals[0]) for p in segments)
    total_len = sum(int(p.totals[1]) for p in segments)
    df = np.zeros(len(terms), dtype=np.int64)  # summed over the segments that hold a term
    for p, f in zip(segments, found):
        for j, i in enumerate(f):
            if i >= 0:
                if not 0 < int(p.df[i]) <= int(p.totals[0]):
                    raise FormatError(f"lexical statistics are damaged: a term's document "
                                      f"count is {int(p.df[i])} in a segment of "
                                      f"{int(p.totals[0])} rows")
                df[j] += int(p.df[i])
    return n, total_len, df


def search(segments: Sequence[Postings], query_terms: Sequence[str], k: int, *,
           params: BM25 = BM25(), row_starts: Sequence[int] | None = None,
           allow: Sequence[np.ndarray | None] | None = None, threads: int | None = None,
           totals: tuple[int, int, dict[str, int]] | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows for analyzed `query_terms` -> (scores float32[k'], global rows
    int64[k']), score descending, ties by lower row; rows with no query term never come
    back. `allow[i]`: a bool mask over segment i's rows (None = all). `threads`: segments
    are scored in up to this many threads (default: the CPUs this process may use) when
    there are several and enough postings to decode; each segment's result is the same
    either way. `totals`: the statistics to score with, `statistics()` summed over more
    indexes than these segments (default: these segments' own)."""
    k = check_k(k)
    workers = workers_for(threads)
    if row_starts is None:
        row_starts = np.cumsum([0] + [int(p.totals[0]) for p in segments])[:-1]
    counts = Counter(query_terms)
    terms = sorted(counts, key=lambda t: t.encode("utf-8"))  # a fixed summation order
    found = [find(p, terms) for p in segments]
    n, total_len, df = _statistics(segments, terms, found)
    if totals is not None:
        n, total_len = int(totals[0]), int(totals[1])
        df = np.array([int(totals[2].get(t, 0)) for t in terms], dtype=np.int64)
    if not terms or n == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    weight = np.array([counts[t] for t in terms]) * idf(n, df)
    denom = (params.k1 * (1 - params.b + params.b * _NORMS / max(total_len / n, 1e-9))
             ).astype(np.float32)
    jobs = []
    for s, (p, f) in enumerate(zip(segments, found)):
        present = [j for j, i in enumerate(f) if i >= 0]
        if present:
            jobs.append((s, np.array([f[j] for j in present], dtype=np.int64),
                         weight[present].astype(np.float32)))

    def run(job):
        s, seg_terms, seg_weights = job
        sc, r = _segment(segments[s], seg_terms, seg_weights, denom,
                         None if allow is None else allow[s], k)
        return sc, r + int(row_starts[s])
    size = sum(_posting_bytes(segments[s], t) for s, t, _ in jobs)
    found_rows = in_threads(run, jobs, workers if size >= PARALLEL_BYTES else 1)
    if not found_rows:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    return best_k(np.concatenate([f[0] for f in found_rows]),
                  np.concatenate([f[1] for f in found_rows]), k)


# Postings bytes a query must decode before its segments are scored in threads: handing
# work to a thread costs ~0.1 ms, what the kernel decodes ~15 KB in.
PARALLEL_BYTES = 64 << 10
_POOL: list = []  # [executor, its threads, the process that made it]
_POOL_LOCK = threading.Lock()


def workers_for(threads: int | None) -> int:
    """`threads` checked, or the CPUs this process may run on."""
    if check_threads(threads) is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
            (os.cpu_count() or 1)
    return int(threads)


def in_threads(fn, items: list, workers: int) -> list:
    """[fn(item) for item in items], the items dealt round-robin to up to `workers`
    threads of a shared pool (the calling thread runs the first share); results in the
    items' order. Every share has finished when this returns or raises."""
    shares = min(workers, len(items))
    if shares <= 1:
        return [fn(item) for item in items]
    with _POOL_LOCK:
        # a new pool when more threads are wanted, or in a forked child (whose copy of the
        # parent's pool has no threads and would never run the work)
        if not _POOL or _POOL[1] < shares - 1 or _POOL[2] != os.getpid():
            if _POOL and _POOL[2] == os.getpid():
                _POOL[0].shutdown(wait=False)  # its queued work still runs
            _POOL[:] = [ThreadPoolExecutor(max_workers=shares - 1,
                                           thread_name_prefix="edgevec-bm25"),
                        shares - 1, os.getpid()]
        # submitted under the lock: another thread's search could otherwise shut this
        # pool down (wanting a bigger one) between our look and our submit
        futures = [_POOL[0].submit(lambda j=j: [fn(item) for item in items[j::shares]])
                   for j in range(1, shares)]
    out: list = [None] * len(items)
    try:
        out[0::shares] = [fn(item) for item in items[0::shares]]
    finally:  # never leave work running on a file the caller may close or replace
        wait(futures)
    for j, future in enumerate(futures, start=1):
        out[j::shares] = future.result()
    return out


def _posting_bytes(p: Postings, terms: np.ndarray) -> int:
    """The bytes of the postings of `terms` (0 for a term whose offsets are damaged)."""
    return sum(int(p.offsets[t + 1]) - int(p.offsets[t]) for t in terms.tolist()
               if 0 <= int(p.offsets[t]) <= int(p.offsets[t + 1]) <= len(p.data))


_DAMAGED = ("lexical postings are damaged (a value runs past its term's bytes or names a "
            "row past the segment)")


_SCRATCH = threading.local()


def _scratch(n: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's score accumulator (all zeros: the kernel clears what it touched) and
    touched-row list, for segments of up to n rows; grown, never shrunk (8 bytes per
    row of the largest segment searched)."""
    acc = getattr(_SCRATCH, "acc", None)
    if acc is None or len(acc) < n:
        _SCRATCH.acc = acc = np.zeros(n, dtype=np.float32)
        _SCRATCH.touched = np.empty(n, dtype=np.int32)
    return acc, _SCRATCH.touched


def _segment(p: Postings, terms: np.ndarray, weights: np.ndarray, denom: np.ndarray,
             allow: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (scores, segment rows) of one segment, score descending, ties by row."""
    n = len(p.norms)
    if allow is not None and len(allow) != n:
        raise InvalidInput(f"the row mask has {len(allow)} entries for {n} rows")
    # a new process: not worth loading Numba for a few postings (search.ScanEngine)
    if ENGINE.use_numpy(_posting_bytes(p, terms) // 8):
        start = time.perf_counter()
        acc = np.zeros(n, dtype=np.float32)
        rows = _accumulate_numpy(p, terms, weights, denom, acc)
        ENGINE.numpy_seconds += time.perf_counter() - start
    else:
        from ..kernels._intrinsics import KEY_NONE
        from ..kernels.bm25 import bm25_topk
        from ..kernels.topk import split_score_keys
        heap = np.full(max(1, min(k, n)), KEY_NONE, dtype=np.int64)  # at most the rows
        mask = np.zeros(0, np.uint8) if allow is None else \
            np.ascontiguousarray(allow, dtype=bool).view(np.uint8)
        acc, touched = _scratch(n)
        if bm25_topk(p.data, p.offsets, terms, weights, p.norms, denom, acc,
                     acc.view(np.int32), touched, mask, heap) < 0:
            raise FormatError(_DAMAGED)
        bits, rows = split_score_keys(np.sort(heap[heap != KEY_NONE]))
        return bits.view(np.float32), rows
    if allow is not None:
        rows = rows[np.asarray(allow, dtype=bool)[rows]]
    return best_k(acc[rows], rows, k)


def _accumulate_numpy(p: Postings, terms: np.ndarray, weights: np.ndarray,
                      denom: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """What bm25_topk accumulates, in NumPy (the same float32 operations in the same
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
