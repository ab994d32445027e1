"""Fusing the ranked lists of two retrievers (dense and lexical) into one.

Reciprocal-rank fusion (Cormack, Clarke and Büttcher, 2009), the default: a row scores
the sum over the lists that hold it of 1 / (k + rank), ranks counted from 1, over the top
`depth` of each list. It needs no score calibration between retrievers. The weighted
mode, for users who tune: alpha * dense + (1 - alpha) * lexical over each list's top
`depth` scores min-max normalised to [0, 1] (a row missing from a list gets 0 there).
Ties go to the lower row. Each fused hit keeps its rank in every list (0 = not in it), so
a user can see which retriever found it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import InvalidInput
from .validate import check_k, check_number

# Chosen on two known-item tasks (stdlib docstrings, manual pages), with and without
# stemming: k=5 was at or above k=10, 20, 60 on all four, depth 100 at or above 10-50
# (bench/README.md, `python3 dev.py bench -k hybrid_rrf -s`). Stored in each new file.
RRF_K = 5
RRF_DEPTH = 100

Fused = tuple[np.ndarray, np.ndarray, np.ndarray]


def _union(lists: Sequence[np.ndarray], depth: int) -> tuple[np.ndarray, np.ndarray, list]:
    """The rows of the lists' tops (ascending) and their 1-based rank in each (0: absent)."""
    tops = [np.asarray(r, dtype=np.int64)[:depth] for r in lists]
    rows = np.unique(np.concatenate(tops)) if tops else np.zeros(0, np.int64)
    ranks = np.zeros((len(rows), len(tops)), dtype=np.int32)
    where = []
    for j, top in enumerate(tops):
        at = np.searchsorted(rows, top)
        ranks[at, j] = np.arange(1, len(top) + 1)
        where.append(at)
    return rows, ranks, where


def _best(scores: np.ndarray, rows: np.ndarray, ranks: np.ndarray, k: int) -> Fused:
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order], ranks[order]


def rrf(lists: Sequence[np.ndarray], k: int, *, rrf_k: int = RRF_K, depth: int = RRF_DEPTH
        ) -> Fused:
    """Rows int64 of each retriever, best first -> (scores float64[k'], rows int64[k'],
    ranks int32[k', len(lists)]: the 1-based rank of each fused row in each list, 0 when
    absent)."""
    k, rrf_k, depth = check_k(k), check_k(rrf_k, "rrf_k"), check_k(depth, "depth")
    rows, ranks, _ = _union(lists, depth)
    scores = np.where(ranks > 0, 1.0 / (rrf_k + np.maximum(ranks, 1)), 0.0).sum(axis=1)
    return _best(scores, rows, ranks, k)


def weighted(lists: Sequence[np.ndarray], scores: Sequence[np.ndarray], k: int, *,
             alpha: float, depth: int = RRF_DEPTH) -> Fused:
    """Two lists (dense, lexical) of rows and their scores, best first -> the fused
    (scores in [0, 1], rows, ranks) of alpha * dense + (1 - alpha) * lexical, each list's
    top `depth` scores min-max normalised (all equal: 1)."""
    k, depth = check_k(k), check_k(depth, "depth")
    alpha = check_number(alpha, "alpha", low=0, high=1)
    if len(lists) != 2 or len(scores) != 2:
        raise InvalidInput("weighted fusion takes two lists: dense and lexical")
    rows, ranks, where = _union(lists, depth)
    fused = np.zeros(len(rows), dtype=np.float64)
    for weight, s, at in zip((alpha, 1 - alpha), scores, where):
        s = np.asarray(s, dtype=np.float64)[:len(at)]
        if len(s):
            span = s.max() - s.min()
            fused[at] += weight * ((s - s.min()) / span if span > 0 else np.ones(len(s)))
    return _best(fused, rows, ranks, k)
