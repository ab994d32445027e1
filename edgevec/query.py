"""The query planner: one committed state of an index (a `Snapshot`) and a batch of
queries -> results.

Pure over the snapshot (no writer, no model): row masks from deletions and filters, the
funnel (or an exact scan) over every segment for all queries at once, results
materialised once. `Index.search` embeds text queries and hands the vectors here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .calibration import DEFAULT_M
from .funnel import Segment, exact_search, funnel_search
from .results import BatchResults, Results
from .storage.reader import Snapshot
from .validate import check_flag, check_k, check_number, check_vectors, normalise


def segments(snap: Snapshot, filter: dict | None = None) -> list[Segment]:  # noqa: A002
    """The segments a search reads, each with its row mask (None = every row): deleted
    rows and rows the metadata `filter` rejects are masked out."""
    matches = None
    if filter is not None:
        from .filters import segment_masks
        matches = segment_masks(snap, filter)
    out = []
    for g, info in enumerate(snap.segments):
        deleted = snap.deleted_in(g)
        allow = None if deleted is None else ~deleted
        if matches is not None:
            allow = matches[g] if allow is None else allow & matches[g]
        binary, int8, f16 = snap.segment_codes(g)
        out.append(Segment(binary, int8, f16, info.row_start, allow))
    return out


def search(snap: Snapshot, queries: Any, *, k: int = 10, filter: dict | None = None,  # noqa: A002
           min_score: float | None = None, m: int | None = None, exact: bool = False,
           rescore_f16: bool = True, threads: int | None = None) -> Results | BatchResults:
    """Vector queries ([dim] -> `Results`, [nq, dim] -> `BatchResults`) over `snap`; the
    options are those of `Index.search`."""
    single = np.ndim(queries) == 1
    q = check_vectors(queries, snap.dim, "queries")
    k = check_k(k)
    m = check_k(m, "m") if m is not None else (snap.meta.get("rescore_m") or DEFAULT_M)
    exact = check_flag(exact, "exact")
    rescore_f16 = check_flag(rescore_f16, "rescore_f16")
    if min_score is not None:
        min_score = check_number(min_score, "min_score")
    if snap.meta["metric"] == "cosine":
        q = normalise(q)
    segs = segments(snap, filter)
    if not segs or not len(q):
        scores, rows = np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
    elif exact:
        scores, rows = exact_search(segs, snap.calibration(), q, k, threads=threads)
    else:
        scores, rows = funnel_search(segs, snap.calibration(), q, k, m=m,
                                     rescore_f16=rescore_f16, threads=threads)
    counts = np.full(len(q), scores.shape[1], dtype=np.int64)
    if min_score is not None:  # scores are sorted: the kept ones are a prefix
        counts = (scores >= min_score).sum(axis=1)
    found = materialise(snap, scores, rows, counts)
    return found[0] if single else found


def materialise(snap: Snapshot, scores: np.ndarray, rows: np.ndarray,
                counts: np.ndarray) -> BatchResults:
    """Ids, texts and metadata of the first counts[i] rows of each query, read once."""
    kept = np.arange(rows.shape[1]) < counts[:, None]
    flat = rows[kept]
    ids, texts, metas = snap.ids_of(flat), snap.texts_of(flat), snap.metadata_of(flat)
    ends = np.cumsum(counts).tolist()
    starts = [0] + ends[:-1]
    scores = np.where(kept, scores, np.float32(np.nan)).astype(np.float32)
    rows = np.where(kept, rows, -1).astype(np.int64)
    scores.flags.writeable = False
    rows.flags.writeable = False
    counts = np.asarray(counts, dtype=np.int64)
    counts.flags.writeable = False
    return BatchResults(tuple(tuple(ids[a:b]) for a, b in zip(starts, ends)), scores,
                        tuple(tuple(texts[a:b]) for a, b in zip(starts, ends)),
                        tuple(tuple(metas[a:b]) for a, b in zip(starts, ends)), rows, counts)
