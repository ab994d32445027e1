"""The funnel: Hamming top-(k*m) over sign bits -> asymmetric int8 (or float8) rescoring
of those candidates -> optional float16 rescoring of the best 4k -> top k, ordered by
score, ties by lower row.

One code path serves one query and a batch: the Hamming stage runs per query below
BATCH_MIN_QUERIES queries (and may use NumPy in a new process, see search.ScanEngine) and
through the batch kernel from there on, which loads each code word once for every query;
both select the same candidates (keys order by distance, then row). Every later stage is
vectorised over the queries. So a query gets the same rows and scores alone as inside
any batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import codecs
from .errors import InvalidInput
from .search import (
    best_k,
    check_k,
    dot_f8_rescore,
    dot_i8_rescore,
    dot_i8_topk,
    exact_topk_f16,
    f16_scores,
    hamming_topk,
    hamming_topk_batch,
    lut_topk,
    quantize_queries,
)

# From this many queries on, the Hamming stage runs through the batch kernel.
BATCH_MIN_QUERIES = 4
# float16 rescoring takes the best F16_DEPTH * k candidates by int8 score (int8's error
# seldom moves a true top-k row further down than that).
F16_DEPTH = 4


@dataclass(frozen=True)
class Segment:
    """The arrays of one segment a search reads (views into the index file)."""

    binary: np.ndarray | None
    int8: np.ndarray | None
    f16: np.ndarray | None
    row_start: int = 0
    allow: np.ndarray | None = None
    transform: np.ndarray | None = None  # a compact index's codes, blocks [nb, bytes, 512]
    rows: int = 0  # rows of the segment (deleted ones too)
    float8: np.ndarray | None = None  # float8 rescoring codes, in place of int8


# The rescoring tier's parameters: the int8 calibration float32 [2, d], or the float8
# (kind, per-dimension scale float32 [d]) of an index whose codes are float8.
Tier = np.ndarray | tuple[str, np.ndarray]


def rescoring_codes(tier, x: np.ndarray) -> np.ndarray:
    """Rows float32 [n, d] -> their rescoring codes under `tier` (see Tier): int8 [n, d]
    or float8 uint8 [n, d]."""
    if isinstance(tier, tuple):
        return codecs.quantize_float8(x, tier[1], tier[0])
    return codecs.quantize_int8(x, tier)


def rescorer(tier, q: np.ndarray):
    """(segment, candidate rows int64 [nq, c]) -> scores float64 [nq, c] of queries q
    [nq, d] by the segment's rescoring codes (`tier`: see Tier)."""
    if isinstance(tier, tuple):
        kind, scale = tier
        return lambda seg, rows: dot_f8_rescore(seg.float8, kind, scale, q, rows)
    qq = quantize_queries(q, tier)
    return lambda seg, rows: dot_i8_rescore(seg.int8, qq, rows)


def _as_batch(queries: np.ndarray) -> np.ndarray:
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim != 2:
        raise InvalidInput(f"queries must be float32 [nq, d], got shape {list(q.shape)}")
    return np.ascontiguousarray(q)


def _hamming_candidates(seg: Segment, qbits: np.ndarray, depth: int,
                        threads: int | None) -> np.ndarray:
    """Local rows int64[nq, c] of each query's `depth` nearest rows by Hamming distance."""
    if len(qbits) >= BATCH_MIN_QUERIES:
        return hamming_topk_batch(seg.binary, qbits, depth, allow=seg.allow,
                                  threads=threads)[1]
    return np.stack([hamming_topk(seg.binary, qb, depth, allow=seg.allow, threads=threads)[1]
                     for qb in qbits])


def funnel_search(segments: Sequence[Segment], calibration: Tier, queries: np.ndarray,
                  k: int, *, m: int = 10, rescore_f16: bool = True,
                  threads: int | None = None, signs: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """float32 queries [nq, d] (or one [d]) over segments -> (scores float32[nq, k'], global
    rows int64[nq, k']); k' = min(k, candidates), the same for every query ([k'] arrays
    for one query). `calibration`: the rescoring tier (see Tier). `signs`: vectors of the
    queries' shape whose sign bits pick the candidates (default: the queries')."""
    single = np.ndim(queries) == 1
    q = _as_batch(queries[None, :] if single else queries)
    k = check_k(k)
    m = check_k(m, "m")
    nq = len(q)
    qbits = codecs.sign_bits(q if signs is None else _as_batch(
        signs[None, :] if single else signs))
    rescore = rescorer(calibration, q)
    scores, rows, seg_of = [], [], []
    for si, seg in enumerate(segments):
        if not len(seg.binary) or not nq:
            continue
        cand = _hamming_candidates(seg, qbits, k * m, threads)
        if cand.shape[1] == 0:
            continue
        scores.append(rescore(seg, cand))
        rows.append(cand + seg.row_start)
        seg_of.append(np.full(cand.shape[1], si, dtype=np.int64))
    if not rows:
        out = np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
    else:
        sc, rw = np.concatenate(scores, axis=1), np.concatenate(rows, axis=1)
        if rescore_f16 and all(s.f16 is not None for s in segments):
            sc, rw = _rescore_f16(segments, q, sc, rw, F16_DEPTH * k)
        out = best_k(sc.astype(np.float32), rw, k)
    return (out[0][0], out[1][0]) if single else out


def _rescore_f16(segments: Sequence[Segment], q: np.ndarray, scores: np.ndarray,
                 rows: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact float16 scores of each query's `depth` best candidates by int8 score."""
    _, keep = best_k(scores.astype(np.float32), rows, depth)
    starts = np.array([s.row_start for s in segments], dtype=np.int64)
    seg_of = np.searchsorted(starts, keep, side="right") - 1
    exact = np.empty(keep.shape, dtype=np.float32)
    for i in range(len(q)):  # per query, so a query scores the same alone as in a batch
        for si in np.unique(seg_of[i]).tolist():
            sel = seg_of[i] == si
            exact[i, sel] = f16_scores(segments[si].f16, q[i], keep[i, sel] - starts[si])
    return exact, keep


def _full_scans(segments: Sequence[Segment], nq: int, k: int, scan
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each query's best k over full scans of every segment: scan(segment, query index)
    -> (scores float32, local rows) or None (nothing to scan) -> (scores float32[nq, k'],
    global rows int64[nq, k']), score descending, ties by lower row."""
    found_s, found_r = [], []
    for qi in range(nq):
        scores, rows = [], []
        for seg in segments:
            found = scan(seg, qi)
            if found is not None:
                scores.append(np.asarray(found[0], np.float32))
                rows.append(found[1] + seg.row_start)
        s, r = best_k(np.concatenate(scores) if scores else np.zeros(0, np.float32),
                      np.concatenate(rows) if rows else np.zeros(0, np.int64), k)
        found_s.append(s)
        found_r.append(r)
    if not found_s:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
    return np.stack(found_s), np.stack(found_r)


def transform_search(segments: Sequence[Segment], code: dict, queries: np.ndarray, k: int,
                     *, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A compact index's search: every eligible row's transform code scored through the
    query's tables (search.lut_topk; the estimated dot product with the decoded row) ->
    (scores float32[nq, k'], global rows int64[nq, k'])."""
    q = _as_batch(queries)
    k = check_k(k)
    lut, offset = codecs.transform_lut(q, code)

    def scan(seg: Segment, qi: int):
        if not seg.rows:
            return None
        s, r = lut_topk(seg.transform, seg.rows, lut[qi], k, allow=seg.allow, threads=threads)
        return (s.astype(np.float64) + offset[qi]).astype(np.float32), r
    return _full_scans(segments, len(q), k, scan)


def exact_search(segments: Sequence[Segment], calibration: Tier | None,
                 queries: np.ndarray, k: int, *, threads: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Every eligible row scored, with float16 where stored, else int8 (or float8) ->
    (scores float32[nq, k'], rows int64[nq, k'])."""
    q = _as_batch(queries)
    k = check_k(k)
    qq = None

    def scan(seg: Segment, qi: int):
        nonlocal qq
        if seg.f16 is not None:
            return exact_topk_f16(seg.f16, q[qi], k, allow=seg.allow)
        if seg.float8 is not None:  # every eligible row through the rescoring kernel
            rows = np.arange(len(seg.float8)) if seg.allow is None else np.flatnonzero(
                seg.allow)
            return best_k(rescorer(calibration, q[qi:qi + 1])(seg, rows[None])[0]
                          .astype(np.float32), rows, k)
        if qq is None:
            qq = quantize_queries(q, calibration)
        return dot_i8_topk(seg.int8, qq.row(qi), k, allow=seg.allow, threads=threads)
    return _full_scans(segments, len(q), k, scan)
