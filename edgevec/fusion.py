"""Fusing the ranked lists of two retrievers (dense and lexical) into one.

Reciprocal-rank fusion (Cormack, Clarke and Büttcher, 2009): a row scores the sum over
the lists that hold it of 1 / (k + rank), ranks counted from 1, over the top `depth` of
each list. It needs no score calibration between retrievers, which is why it is the
default. Ties go to the lower row. Each fused hit keeps its rank in every list (0 = not
in it), so a user can see which retriever found it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .validate import check_k

RRF_K = 10       # measured on the stdlib known-item task: see bench/README.md
RRF_DEPTH = 100


def rrf(lists: Sequence[np.ndarray], k: int, *, rrf_k: int = RRF_K, depth: int = RRF_DEPTH
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows int64 of each retriever, best first -> (scores float64[k'], rows int64[k'],
    ranks int32[k', len(lists)]: the 1-based rank of each fused row in each list, 0 when
    absent)."""
    k = check_k(k)
    rrf_k = check_k(rrf_k, "rrf_k")
    depth = check_k(depth, "depth")
    tops = [np.asarray(r, dtype=np.int64)[:depth] for r in lists]
    rows = np.unique(np.concatenate(tops)) if tops else np.zeros(0, np.int64)
    ranks = np.zeros((len(rows), len(tops)), dtype=np.int32)
    for j, top in enumerate(tops):
        ranks[np.searchsorted(rows, top), j] = np.arange(1, len(top) + 1)
    scores = np.where(ranks > 0, 1.0 / (rrf_k + np.maximum(ranks, 1)), 0.0).sum(axis=1)
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order], ranks[order]
