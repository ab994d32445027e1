"""The query planner: one committed state of an index (a `Snapshot`) and a batch of
queries -> results.

Pure over the snapshot (no writer, no model): row masks from deletions and filters, the
funnel (or an exact scan) over every segment for all queries at once, results
materialised once. `Index.search` embeds text queries and hands the vectors here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibration import DEFAULT_M
from .funnel import Segment, exact_search, funnel_search, transform_search
from .fusion import rrf, weighted
from .lexical import Analyzer, bm25
from .lexical.bm25 import BM25
from .results import BatchResults, Results
from .storage.reader import Snapshot
from .errors import InvalidInput
from .validate import (
    check_choice, check_flag, check_k, check_number, check_threads, check_vectors, normalise,
)


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
        out.append(Segment(binary, int8, f16, info.row_start, allow,
                           snap.transform_blocks(g), info.rows,
                           snap.segment_array("float8", g)))
    return out


MODES = ("dense", "lexical", "hybrid")


def search(snap: Snapshot | Sequence[Snapshot], queries: Any, *,
           texts: list[str] | None = None, mode: str | None = None, k: int = 10,
           filter: dict | None = None,  # noqa: A002
           min_score: float | None = None, m: int | None = None, exact: bool = False,
           rescore_f16: bool = True, threads: int | None = None,
           single: bool | None = None, alpha: float | None = None
           ) -> Results | BatchResults:
    """Queries over `snap` -> `Results` (one query) or `BatchResults`. `queries`: vectors
    ([dim] or [nq, dim]; None for a lexical search), `texts`: the query texts (lexical and
    hybrid modes). `mode`: "dense", "lexical" or "hybrid" (default: hybrid for texts on
    an index with postings, else dense). `alpha`: hybrid only; None fuses by reciprocal
    rank, a number in [0, 1] weighs normalised scores (edgevec.fusion). Scores (and so
    `min_score`): cosine or dot product (dense), BM25 (lexical), the fusion score
    (hybrid). The other options are those of `Index.search`.

    `snap` may be several snapshots of compatible indexes (a shard set, edgevec.shards):
    they are searched as one index holding their rows in that order (row numbers run on
    from one shard to the next), BM25 statistics summed over all of them; each shard's
    dense list comes from its own funnel (its own int8 calibration and depth m)."""
    snaps = [snap] if isinstance(snap, Snapshot) else list(snap)
    return plan(Local(snaps, filter), queries, texts=texts, mode=mode, k=k,
                min_score=min_score, m=m, exact=exact, rescore_f16=rescore_f16,
                threads=threads, single=single, alpha=alpha)


class Local:
    """The retrievers `plan` calls, over snapshots open in this process: the dense lists
    of each (merged), BM25 over all their segments, and their rows to read hits from."""

    missing: tuple = ()

    def __init__(self, snaps: Sequence[Snapshot], filter: dict | None) -> None:  # noqa: A002
        self.snaps = list(snaps)
        self.meta, self.dim, self.path = snaps[0].meta, snaps[0].dim, snaps[0].path
        self.offsets = np.cumsum([0] + [s.rows for s in self.snaps])[:-1].tolist()
        self.segments = [segments(s, filter) for s in self.snaps]
        self.rows = self.snaps[0] if len(self.snaps) == 1 else Rows(self.snaps, self.offsets)
        self.live_rows = sum(s.live for s in self.snaps)

    def dense(self, q: np.ndarray, k: int, depth: int, m: int | None, exact: bool,
              rescore_f16: bool, threads: int | None) -> tuple[np.ndarray, np.ndarray]:
        lists = [_dense(s, segs, q, k, depth, m, exact, rescore_f16, threads, off)
                 for s, segs, off in zip(self.snaps, self.segments, self.offsets)]
        return lists[0] if len(lists) == 1 else _merge(lists, depth)

    def lexical(self, texts: list[str], depth: int, threads: int | None
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        return _lexical(self.meta["lexical"], [
            (s.postings(g), off + seg.row_start, seg.allow)
            for s, segs, off in zip(self.snaps, self.segments, self.offsets)
            for g, seg in enumerate(segs)], texts, depth, threads)


def plan(source: Any, queries: Any, *, texts: list[str] | None, mode: str | None, k: int,
         min_score: float | None, m: int | None, exact: bool, rescore_f16: bool,
         threads: int | None, single: bool | None, alpha: float | None
         ) -> Results | BatchResults:
    """`search` over any `source` with `Local`'s attributes (meta, dim, path, live_rows, dense,
    lexical, rows, missing): the mode chosen and checked, the dense and lexical lists
    fetched, fused, cut by `min_score` and read into results. A source served elsewhere
    (edgevec.integrations.ray_shards) plugs in here and answers exactly like a local one."""
    meta = source.meta
    lexical_index = bool(meta.get("lexical"))
    if mode is None:
        mode = "hybrid" if texts is not None and lexical_index and queries is not None else (
            "lexical" if queries is None else "dense")
    mode = check_choice(mode, MODES, "mode")
    if mode != "lexical" and not source.dim:
        raise InvalidInput(f"{source.path} is a lexical-only index (no vectors): search it "
                           f"with text and mode='lexical', not mode={mode!r}")
    if mode != "dense" and (texts is None or not lexical_index):
        raise InvalidInput(f"mode={mode!r} needs a text query and an index with lexical "
                           f"postings; {source.path} has "
                           f"{'them' if lexical_index else 'none'} (create it with "
                           "lexical=True)")
    if alpha is not None and mode != "hybrid":
        raise InvalidInput(f"alpha weighs the two lists of mode='hybrid'; this search is "
                           f"mode={mode!r}")
    if single is None:
        single = np.ndim(queries) == 1
    # k and m capped by the live rows before anything is allocated for them (a lexical
    # k=10**9 used to allocate 8 GB of heap on a 2,000-row index); threads checked here,
    # on every path, NumPy's too
    rows = max(1, source.live_rows)
    k = min(check_k(k), rows)
    m = min(check_k(m, "m"), rows) if m is not None else None
    threads = check_threads(threads)
    exact = check_flag(exact, "exact")
    rescore_f16 = check_flag(rescore_f16, "rescore_f16")
    if min_score is not None:
        min_score = check_number(min_score, "min_score")
    nq = len(texts) if mode == "lexical" else None
    ranks = None
    if mode != "lexical":
        q = check_vectors(queries, source.dim, "queries")
        if meta["metric"] == "cosine":
            q = normalise(q)
        nq = len(q)
        depth = k if mode == "dense" else min(max(k, meta["lexical"]["rrf"]["depth"]), rows)
        scores, rows = source.dense(q, k, depth, m, exact, rescore_f16, threads)
    if mode != "dense":
        lexical = source.lexical(texts, k if mode == "lexical" else depth, threads)
        if mode == "lexical":
            scores, rows = _pad(lexical, k)
        else:
            if alpha is None:
                fused = [rrf([rows[i], lexical[i][1]], k, rrf_k=meta["lexical"]["rrf"]["k"],
                             depth=depth)
                         for i in range(nq)]
            else:
                live = [rows[i] >= 0 for i in range(nq)]
                fused = [weighted([rows[i][live[i]], lexical[i][1]],
                                  [scores[i][live[i]], lexical[i][0]], k, alpha=alpha,
                                  depth=depth) for i in range(nq)]
            scores, rows = _pad([(f[0].astype(np.float32), f[1]) for f in fused], k)
            ranks = np.zeros((nq, rows.shape[1], 2), dtype=np.int32)
            for i, f in enumerate(fused):
                ranks[i, :len(f[2])] = f[2]
    counts = np.full(nq, scores.shape[1], dtype=np.int64)
    if mode != "dense":
        counts = (rows >= 0).sum(axis=1)
    if min_score is not None:  # scores are sorted: the kept ones are a prefix
        counts = np.minimum(counts, (np.nan_to_num(scores, nan=-np.inf) >= min_score).sum(axis=1))
    found = materialise(source.rows, scores, rows, counts, ranks, source.missing)
    return found[0] if single else found


def _dense(snap: Snapshot, segs: list[Segment], q: np.ndarray, k: int, depth: int,
           m: int | None, exact: bool, rescore_f16: bool, threads: int | None, offset: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """One index's dense list: (scores float32 [nq, <= depth], rows int64, + offset; -1
    past the end). A projected index scores the projected queries and adds back what the
    projection takes out of every score of a query (codecs.Projection.queries)."""
    nq = len(q)
    if not segs or not nq:
        return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
    projection = snap.projection()
    shift = signs = None
    if projection is not None:  # the first stage compares centred signs with centred rows
        q, shift, signs = *projection.queries(q), projection.centred(q)
    tier = snap.float8() or snap.calibration()
    if "transform" in snap.meta["codecs"]:  # a compact index: one scan, exact or not
        scores, rows = transform_search(segs, snap.transform_code(), q, depth,
                                        threads=threads)
    elif exact:
        scores, rows = exact_search(segs, tier, q, depth, threads=threads)
    else:
        # hybrid's dense list costs what a dense search of k does: the k * m best
        # candidates by Hamming distance, rescored and ranked to `depth`
        m = m or snap.meta.get("rescore_m") or DEFAULT_M
        scores, rows = funnel_search(segs, tier, q, depth, m=-(-k * m // depth),
                                     rescore_f16=rescore_f16, threads=threads, signs=signs)
    if shift is not None and shift.any():
        scores = (scores.astype(np.float64) + shift[:, None]).astype(np.float32)
    return scores, (np.where(rows >= 0, rows + offset, -1) if offset else rows)


def _merge(lists: list[tuple[np.ndarray, np.ndarray]], depth: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Several [nq, *] (scores, rows) lists -> the best `depth` of each query over all of
    them: score descending, ties by lower row; padding (row -1) last."""
    scores = np.concatenate([s for s, _ in lists], axis=1)
    rows = np.concatenate([r for _, r in lists], axis=1)
    out_s = np.full((len(rows), min(depth, rows.shape[1])), np.nan, np.float32)
    out_r = np.full(out_s.shape, -1, np.int64)
    for i in range(len(rows)):
        live = rows[i] >= 0
        s, r = scores[i][live], rows[i][live]
        order = np.lexsort((r, -s))[:depth]
        out_s[i, :len(order)], out_r[i, :len(order)] = s[order], r[order]
    return out_s, out_r


class Rows:
    """The rows of several snapshots numbered one after another (a shard set), read the
    way `materialise` reads one snapshot's."""

    def __init__(self, snaps: Sequence[Snapshot], offsets: Sequence[int]) -> None:
        self.snaps, self.offsets = list(snaps), np.asarray(offsets, dtype=np.int64)

    def _gather(self, rows: np.ndarray, read: str) -> list:
        rows = np.asarray(rows, dtype=np.int64)
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        out: list = [None] * len(rows)
        for j in np.unique(shard).tolist():
            at = np.flatnonzero(shard == j)
            values = getattr(self.snaps[j], read)(rows[at] - self.offsets[j])
            for i, v in zip(at.tolist(), values):
                out[i] = v
        return out

    def ids_of(self, rows):
        return self._gather(rows, "ids_of")

    def texts_of(self, rows):
        return self._gather(rows, "texts_of")

    def metadata_of(self, rows):
        return self._gather(rows, "metadata_of")


def _lexical(settings: dict, parts: list, texts: list[str], depth: int,
             threads: int | None, totals: list | None = None
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """BM25 top-`depth` (scores, global rows) of each query text over `parts`: (postings
    or None, first global row, row mask) per segment (deleted and filtered rows never
    come back). `totals[i]`: query i's statistics summed over more indexes than these
    (bm25.statistics), when they are a part of a served shard set. A batch is spread over
    the threads query by query, a single query segment by segment."""
    analyzer = Analyzer.from_settings(settings["analyzer"])
    params = BM25(k1=settings["bm25"]["k1"], b=settings["bm25"]["b"])
    parts = [part for part in parts if part[0] is not None]
    workers = bm25.workers_for(threads)
    totals = totals if totals is not None else [None] * len(texts)

    def one(i: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        return bm25.search([p for p, _, _ in parts], analyzer.terms(texts[i]), depth,
                           params=params, row_starts=[start for _, start, _ in parts],
                           allow=[allow for _, _, allow in parts], threads=threads,
                           totals=totals[i])
    if len(texts) == 1:
        return [one(0, workers)]
    return bm25.in_threads(lambda i: one(i, 1), list(range(len(texts))), workers)


def lexical_statistics(snap: Snapshot, texts: list[str]) -> list[tuple[int, int, dict]]:
    """Each query text's BM25 statistics over `snap` (bm25.statistics), to be summed with
    those of the other indexes of a shard set before any of them scores."""
    analyzer = Analyzer.from_settings(snap.meta["lexical"]["analyzer"])
    postings = [p for p in (snap.postings(g) for g in range(len(snap.segments)))
                if p is not None]
    return [bm25.statistics(postings, analyzer.terms(t)) for t in texts]


def _pad(found: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query (scores, rows) of different lengths -> [nq, k'] arrays padded with NaN and
    -1."""
    width = max([len(r) for _, r in found] + [0])
    scores = np.full((len(found), width), np.nan, dtype=np.float32)
    rows = np.full((len(found), width), -1, dtype=np.int64)
    for i, (s, r) in enumerate(found):
        scores[i, :len(r)], rows[i, :len(r)] = s[:k], r[:k]
    return scores, rows


def materialise(snap: Snapshot, scores: np.ndarray, rows: np.ndarray,
                counts: np.ndarray, ranks: np.ndarray | None = None,
                missing: tuple = ()) -> BatchResults:
    """Ids, texts and metadata of the first counts[i] rows of each query, read once.
    `missing`: the shards that did not answer (a partial result)."""
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
    if ranks is not None:
        ranks = np.where(kept[:, :, None], ranks, 0).astype(np.int32)
        ranks.flags.writeable = False
    return BatchResults(tuple(tuple(ids[a:b]) for a, b in zip(starts, ends)), scores,
                        tuple(tuple(texts[a:b]) for a, b in zip(starts, ends)),
                        tuple(tuple(metas[a:b]) for a, b in zip(starts, ends)), rows, counts,
                        ranks, tuple(missing))
