"""Choosing the funnel's rescoring depth m: the smallest m whose funnel reaches a recall
target against exact search, measured on a sample of the index's own vectors.

Queries are not rows. A row used as a query (its own row excluded) has neighbours that
share much of its sign pattern, because they lie on the same manifold; a real query (a
question against passages) lies off it, its sign bits agree less with those of its true
neighbours, and the funnel needs a deeper m. Calibrated with rows as queries, m gave
recall@10 0.94 on real text queries for a 0.95 target. So the sample queries here are
rows moved off the manifold: each is its row plus isotropic Gaussian noise scaled so that
its cosine to the row is QUERY_COSINE, and the truth is exact search over every sampled
row (the seed row included). On the stdlib known-item task (2,469 MiniLM vectors and
their real summary queries, `python3 dev.py bench -k quality -s`), the index picks m=16
and its recall@10 against exact search on the real queries is 0.968 (Zen 3 VM); across
m, that task's real-query recall is 0.94 at m=8, 0.963 at 12, 0.984 at 20.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import codecs
from .funnel import Segment, Tier, funnel_search, rescoring_codes
from .search import best_k, check_k

DEFAULT_M_CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64)
DEFAULT_M = 10  # the funnel's depth for an index that has no measured one
# cosine of a sample query to the row it was made from: on the stdlib task 0.9 picked
# m=12 (real-query recall 0.963, a thin margin), 0.8 picks 16-20 (0.968-0.984)
QUERY_COSINE = 0.8
# The first batch of at least this many rows calibrates m; it is measured again whenever
# the index has grown by RECALIBRATE_GROWTH since.
CALIBRATE_MIN_ROWS = 1000
RECALIBRATE_GROWTH = 4


def depth_to_store(m: int | None, candidates: Sequence[int] = DEFAULT_M_CANDIDATES) -> int:
    """What a calibration stores: the smallest m that reached its target, else the deepest
    m it measured (the best it saw; not DEFAULT_M, which is for indexes never measured)."""
    return m if m is not None else max(candidates)


def needs_calibration(stored_m: int | None, calibrated_rows: int | None,
                      rows_after: int) -> bool:
    """Whether a commit that brings the index to `rows_after` live rows should measure m:
    never measured and big enough, or grown RECALIBRATE_GROWTH-fold since it was."""
    if rows_after < CALIBRATE_MIN_ROWS:
        return False
    if stored_m is None:
        return True
    return calibrated_rows is not None and rows_after >= RECALIBRATE_GROWTH * calibrated_rows


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (rows per query in each row); an
    empty set of queries is an error, not a perfect recall."""
    if len(truth) == 0:
        raise ValueError("recall over no queries")
    hits = [len(np.intersect1d(f, t)) / max(len(t), 1) for f, t in zip(found, truth)]
    return float(np.mean(hits))


def sample_queries(x: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` queries made from random rows of unit vectors x (see the module doc)."""
    rng = np.random.default_rng(seed)
    seeds = x[rng.choice(len(x), size=min(count, len(x)), replace=False)].astype(np.float64)
    noise = rng.standard_normal(seeds.shape)
    # remove the noise's component along the row, then scale it: cos = 1 / sqrt(1 + t^2)
    noise -= (noise * seeds).sum(axis=1, keepdims=True) * seeds
    noise /= np.maximum(np.linalg.norm(noise, axis=1, keepdims=True), 1e-30)
    lengths = np.linalg.norm(seeds, axis=1, keepdims=True)
    t = np.sqrt(1 / QUERY_COSINE**2 - 1)
    q = seeds + t * lengths * noise
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def choose_m(vectors: np.ndarray, *, k: int = 10, target: float = 0.95,
             sample: int = 200, seed: int = 0, candidates: Sequence[int] = DEFAULT_M_CANDIDATES,
             calibration: Tier | None = None, threads: int | None = None,
             codes: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[int | None, dict[int, float]]:
    """The smallest m whose funnel (binary -> int8 or float8, no float16) reaches
    recall@k >= target against exact float32 search over `vectors` (unit rows), measured
    with `sample` queries made from them (see the module doc). Returns (m or None when no
    candidate reaches it, {m: recall}). `calibration`: the rescoring tier (funnel.Tier;
    default: int8 calibrated on `vectors`). `codes` = (binary, rescoring codes) of
    `vectors` when the caller has already encoded them with `calibration`."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    k = check_k(k)
    sample = check_k(sample, "sample")  # recall over no queries would read as 1.0
    if n <= k:
        return 1, {1: 1.0}
    cal = codecs.calibrate_int8(x) if calibration is None else calibration
    binary, second = codes if codes is not None else (codecs.sign_bits(x),
                                                       rescoring_codes(cal, x))
    seg = (Segment(binary, None, None, float8=second) if isinstance(cal, tuple)
           else Segment(binary, second, None))
    q = sample_queries(x, sample, seed)
    step = max(1, (1 << 22) // n)  # queries per block: ~4M scores of temporaries
    truth = np.concatenate([best_k(q[a:a + step] @ x.T, np.broadcast_to(
        np.arange(n), (len(q[a:a + step]), n)), k)[1] for a in range(0, len(q), step)])
    recalls: dict[int, float] = {}
    for m in candidates:
        _, found = funnel_search([seg], cal, q, k, m=m, rescore_f16=False, threads=threads)
        recalls[m] = recall_at_k(found, truth)
        if recalls[m] >= target:
            return m, recalls
    return None, recalls
