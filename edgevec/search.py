"""The search layer over the kernels: validation, thread control, and the funnel.

Every public function here validates its arrays (dtype, shape, C-contiguity, finite
queries, mask length, k) before a kernel runs: the kernels trust their input, and in a
Numba kernel an out-of-bounds index is a crash, not an exception. Inputs are handed to
the kernels as read-only views, so one compiled specialisation serves memory-mapped and
in-memory arrays alike.

Funnel: Hamming top-(k*m) over sign bits -> asymmetric int8 rescoring of those candidates
-> optional float16 rescoring -> top k, ordered by score, ties by lower row.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from . import codecs
from .errors import DimensionMismatch, InvalidInput

MAX_ROWS_PER_CALL = 2**31 - 1
DEFAULT_M_CANDIDATES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64)
DEFAULT_M = 10  # the funnel's depth for an index that has no measured one


def depth_to_store(m: int | None, candidates: Sequence[int] = DEFAULT_M_CANDIDATES) -> int:
    """What a calibration stores: the smallest m that reached its target, else the deepest
    m it measured (the best it saw; not DEFAULT_M, which is for indexes never measured)."""
    return m if m is not None else max(candidates)
_NO_MASK = np.zeros(0, dtype=np.uint8)
_NO_MASK.flags.writeable = False


# --- validation ---------------------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def check_codes(a, dtype, name: str, ndim: int = 2) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise InvalidInput(f"{name} must be a NumPy array, got {type(a).__name__}")
    if a.dtype != np.dtype(dtype):
        raise InvalidInput(f"{name} must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != ndim:
        raise InvalidInput(f"{name} must be {ndim}-dimensional, got shape {list(a.shape)}")
    if not a.flags.c_contiguous:
        raise InvalidInput(f"{name} must be C-contiguous (np.ascontiguousarray makes a copy)")
    if ndim == 2 and len(a) > MAX_ROWS_PER_CALL:
        raise InvalidInput(f"{name} has {len(a)} rows; one scan takes at most "
                           f"{MAX_ROWS_PER_CALL} (split the index into segments)")
    return _readonly(a)


def check_k(k, what: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InvalidInput(f"{what} must be a positive int, got {k!r}")
    return int(k)


def check_mask(allow, n: int) -> np.ndarray:
    """A row mask (True/1 = eligible) as read-only uint8[n], or the empty 'all rows' mask."""
    if allow is None:
        return _NO_MASK
    if not isinstance(allow, np.ndarray) or allow.dtype not in (np.bool_, np.uint8) \
            or allow.ndim != 1:
        raise InvalidInput("a row mask must be a 1-D bool or uint8 NumPy array")
    if len(allow) != n:
        raise InvalidInput(f"the row mask has {len(allow)} entries for {n} rows")
    return _readonly(np.ascontiguousarray(allow).view(np.uint8))


def check_query(q, dim: int) -> np.ndarray:
    """float32 [nq, dim] from a vector or a batch; finite values only."""
    try:
        x = np.asarray(q, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a query must be a float vector: {exc}") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InvalidInput(f"a query must be [dim] or [n, dim], got shape {list(x.shape)}")
    if x.shape[1] != dim:
        raise DimensionMismatch(f"the query has dimension {x.shape[1]}, the index {dim}")
    if not np.isfinite(x).all():
        bad = int(np.argmin(np.isfinite(x).all(axis=1)))
        raise InvalidInput(f"query {bad} contains NaN or infinity")
    return np.ascontiguousarray(x)


# --- threads ----------------------------------------------------------------------------------


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


@contextmanager
def threads_for(threads: int | None):
    """Run kernels on `threads` threads (Numba's setting is per calling thread; restored)."""
    import numba
    if threads is None:
        yield numba.get_num_threads()
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInput(f"threads must be a positive int, got {threads!r}")
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield threads
    finally:
        numba.set_num_threads(old)


def _blocks(threads: int, n: int) -> int:
    # a couple of chunks per thread balance a noisy machine; results do not depend on it
    return max(1, min(2 * threads, n))


# --- NumPy or Numba for one query -----------------------------------------------------------


class ScanEngine:
    """Chooses who scans the sign bits for a single query: the Numba kernel or NumPy.

    A new process pays ~0.5 s to import Numba and load a kernel from its disk cache (0.27 +
    0.27 s measured on a 2-core Zen 3), while NumPy scans 100k rows of 384 bits in ~4.5 ms
    and 1M in ~65 ms. So, as in ski rental, a process that has not loaded the kernels yet
    answers with NumPy until it has spent about what loading them costs, then loads them:
    a one-shot `edgevec search` never pays for Numba, a long-lived process at most twice
    the best cost. Scans too large for NumPy to be worth it, batches and full int8 scans go
    to Numba at once. Both give the same rows in the same order (exact integer distances,
    ties by lower row). `mode` ("auto", "numba" or "numpy") comes from $EDGEVEC_SCAN.
    """

    NUMBA_LOAD_SECONDS = 0.5
    NUMPY_MAX_WORDS = 1 << 23  # 64 MB of codes: ~90 ms in NumPy

    def __init__(self) -> None:
        self.mode = os.environ.get("EDGEVEC_SCAN", "auto")
        self.numpy_seconds = 0.0
        self.numba_loaded = False

    def use_numpy(self, words: int) -> bool:
        if self.mode not in ("auto", "numba", "numpy"):
            raise InvalidInput(f"EDGEVEC_SCAN must be auto, numba or numpy, got {self.mode!r}")
        if self.mode == "numpy" or (self.mode == "auto" and not self.numba_loaded
                                    and words <= self.NUMPY_MAX_WORDS
                                    and self.numpy_seconds < self.NUMBA_LOAD_SECONDS):
            return True
        self.numba_loaded = True
        return False


ENGINE = ScanEngine()


def _hamming_topk_numpy(codes: np.ndarray, query: np.ndarray, k: int,
                        mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the Hamming kernel returns, computed with NumPy: k <= eligible rows."""
    n, w = codes.shape
    d = np.empty(n, dtype=np.int32)
    step = 1 << 16  # rows per block: the XOR temporary stays in cache
    for a in range(0, n, step):
        d[a:a + step] = np.bitwise_count(codes[a:a + step] ^ query).sum(axis=1,
                                                                        dtype=np.int32)
    if len(mask):
        d[mask == 0] = w * 64 + 1  # never selected: k <= eligible rows
    kth = np.partition(d, k - 1)[k - 1]
    rows = np.flatnonzero(d <= kth)
    pick = rows[np.lexsort((rows, d[rows]))[:k]]
    return d[pick], pick.astype(np.int64)


# --- Hamming ------------------------------------------------------------------------------


def hamming_topk(codes: np.ndarray, query: np.ndarray, k: int, *,
                 allow: np.ndarray | None = None, threads: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest rows by Hamming distance.

    codes uint64[n, w], query uint64[w] -> (distances int32[k'], rows int64[k']), k' =
    min(k, eligible rows), ordered by distance then row.
    """
    codes = check_codes(codes, np.uint64, "codes")
    query = check_codes(query, np.uint64, "query", ndim=1)
    if query.shape[0] != codes.shape[1]:
        raise DimensionMismatch(f"query has {query.shape[0]} words, codes {codes.shape[1]}")
    k = check_k(k)
    n = len(codes)
    mask = check_mask(allow, n)
    kk = min(k, n if allow is None else int(np.count_nonzero(mask)))
    if kk == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    if ENGINE.use_numpy(codes.size):
        start = time.perf_counter()
        found = _hamming_topk_numpy(codes, query, kk, mask)
        ENGINE.numpy_seconds += time.perf_counter() - start
        return found
    from .kernels import hamming as H
    from .kernels.topk import split_hamming_keys
    with threads_for(threads) as t:
        heaps = H.new_heaps(1, _blocks(t, n), kk)[0]
        H.hamming_topk(codes, query, H.width_of(codes.shape[1]), mask, heaps)
    return split_hamming_keys(np.sort(heaps.ravel())[:kk])


def hamming_topk_batch(codes: np.ndarray, queries: np.ndarray, k: int, *,
                       allow: np.ndarray | None = None, threads: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A batch of queries uint64[nq, w] -> (distances int32[nq, k'], rows int64[nq, k'])."""
    from .kernels import hamming as H
    from .kernels.topk import split_hamming_keys
    codes = check_codes(codes, np.uint64, "codes")
    queries = check_codes(queries, np.uint64, "queries")
    if queries.shape[1] != codes.shape[1]:
        raise DimensionMismatch(f"queries have {queries.shape[1]} words, codes "
                                f"{codes.shape[1]}")
    k = check_k(k)
    n = len(codes)
    mask = check_mask(allow, n)
    eligible = n if allow is None else int(np.count_nonzero(mask))
    kk = min(k, eligible)
    nq = len(queries)
    if kk == 0 or nq == 0:
        return np.zeros((nq, 0), np.int32), np.zeros((nq, 0), np.int64)
    with threads_for(threads) as t:
        heaps = H.new_heaps(max(1, min(t, n)), nq, kk)
        H.hamming_topk_batch(codes, queries, H.width_of(codes.shape[1]), mask, heaps)
    keys = np.sort(heaps.transpose(1, 0, 2).reshape(nq, -1), axis=1)[:, :kk]
    return split_hamming_keys(keys)


# --- int8 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantQuery:
    """A float query prepared for the int8 kernels: score ~= bias + scale * (q_i16 . codes)."""

    q: np.ndarray  # int16[d]
    scale: float
    bias: float


def quantize_query(query: np.ndarray, calibration: np.ndarray) -> QuantQuery:
    """Fold the per-dimension calibration into the query and round it to int16.

    With x ~= c0 + c1 * code: q . x ~= q . c0 + sum((q * c1) * code). The int16 range is
    limited so that |q_i16| * 127 * d < 2**31 (no int32 overflow)."""
    q = np.asarray(query, dtype=np.float64)
    d = q.shape[0]
    folded = q * calibration[1]
    bias = float(q @ calibration[0].astype(np.float64))
    limit = min(32767, (2**31 - 1) // (127 * d))
    peak = float(np.abs(folded).max()) if d else 0.0
    scale = peak / limit if peak > 0 else 1.0
    qi = np.rint(folded / scale).astype(np.int16)
    qi.flags.writeable = False
    return QuantQuery(qi, scale, bias)


def dot_i8_rescore(codes: np.ndarray, qq: QuantQuery, rows: np.ndarray) -> np.ndarray:
    """Approximate scores (float64) of `rows` of int8 codes for a quantized query."""
    codes = check_codes(codes, np.int8, "codes")
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or rows.max() >= len(codes))):
        raise InvalidInput(f"candidate rows must be in [0, {len(codes)})")
    if qq.q.shape[0] != codes.shape[1]:
        raise DimensionMismatch(f"query has {qq.q.shape[0]} dims, codes {codes.shape[1]}")
    if ENGINE.numba_loaded or ENGINE.mode == "numba":
        from .kernels.dot_i8 import dot_i8_rescore as kernel
        out = np.empty(len(rows), dtype=np.int32)
        if len(rows):
            kernel(codes, qq.q, _readonly(rows), out)
    else:  # a few hundred candidate rows: not worth loading Numba for (see ScanEngine)
        out = codes[rows].astype(np.int32) @ qq.q.astype(np.int32)
    return qq.bias + qq.scale * out.astype(np.float64)


def dot_i8_topk(codes: np.ndarray, qq: QuantQuery, k: int, *,
                allow: np.ndarray | None = None, threads: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Full int8 scan: (approximate scores float64[k'], rows int64[k']), best first."""
    from .kernels.dot_i8 import dot_i8_topk as kernel
    from .kernels.hamming import new_heaps
    from .kernels.topk import split_score_keys
    codes = check_codes(codes, np.int8, "codes")
    if qq.q.shape[0] != codes.shape[1]:
        raise DimensionMismatch(f"query has {qq.q.shape[0]} dims, codes {codes.shape[1]}")
    k = check_k(k)
    n = len(codes)
    mask = check_mask(allow, n)
    eligible = n if allow is None else int(np.count_nonzero(mask))
    kk = min(k, eligible)
    if kk == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    with threads_for(threads) as t:
        heaps = new_heaps(1, max(1, min(t, n)), kk)[0]
        kernel(codes, qq.q, mask, heaps)
    keys = np.sort(heaps.ravel())[:kk]
    scores, rows = split_score_keys(keys)
    return qq.bias + qq.scale * scores.astype(np.float64), rows


# --- float16 (exact; NumPy/BLAS: Numba has no float16 on the CPU) ----------------------------


F16_BLOCK = 65536


def f16_scores(vectors: np.ndarray, query: np.ndarray, rows: np.ndarray | None = None
               ) -> np.ndarray:
    """float32 scores of float16 rows (all rows, or `rows`) against a float32 query."""
    if rows is not None:
        return vectors[rows].astype(np.float32) @ query
    out = np.empty(len(vectors), dtype=np.float32)
    for a in range(0, len(vectors), F16_BLOCK):
        out[a:a + F16_BLOCK] = vectors[a:a + F16_BLOCK].astype(np.float32) @ query
    return out


def best_k(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (score descending, row ascending)."""
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order]


def exact_topk_f16(vectors: np.ndarray, query: np.ndarray, k: int, *,
                   allow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact search over float16 vectors (ground truth, small indexes)."""
    k = check_k(k)
    scores = f16_scores(vectors, query)
    rows = np.arange(len(vectors), dtype=np.int64)
    if allow is not None:
        keep = check_mask(allow, len(vectors)).astype(bool)
        scores, rows = scores[keep], rows[keep]
    return best_k(scores, rows, k)


# --- the funnel -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """The arrays of one segment a search reads (views into the index file)."""

    binary: np.ndarray
    int8: np.ndarray
    f16: np.ndarray | None
    row_start: int = 0
    allow: np.ndarray | None = None


def funnel_search(segments: Sequence[Segment], calibration: np.ndarray, query: np.ndarray,
                  k: int, *, m: int = 10, rescore_f16: bool = True,
                  threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One float32 query over segments: (scores float32[k'], global rows int64[k']).

    Per segment: Hamming top-(k*m) -> int8 rescoring of those candidates; then, when every
    segment stores float16 vectors and `rescore_f16`, the best 4k candidates by int8 score
    are rescored exactly with float16."""
    k = check_k(k)
    m = check_k(m, "m")
    qbits = codecs.sign_bits(query[None, :])[0]
    qq = quantize_query(query, calibration)
    found = []
    for si, seg in enumerate(segments):
        if len(seg.binary):
            _, cand = hamming_topk(seg.binary, qbits, k * m, allow=seg.allow, threads=threads)
            found.append((si, cand))
    return _funnel_finish(segments, query, qq, found, k, rescore_f16)


def funnel_search_batch(segments: Sequence[Segment], calibration: np.ndarray,
                        queries: np.ndarray, k: int, *, m: int = 10, rescore_f16: bool = True,
                        threads: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """float32 queries [nq, d] over segments: for each, what funnel_search returns (the
    same rows in the same order), with the Hamming stage of all queries done in one pass
    of the batch kernel per segment, which loads each code word once for every query."""
    k = check_k(k)
    m = check_k(m, "m")
    qbits = codecs.sign_bits(queries)
    found: list[list] = [[] for _ in range(len(queries))]
    for si, seg in enumerate(segments):
        if len(seg.binary) and len(queries):
            _, cand = hamming_topk_batch(seg.binary, qbits, k * m, allow=seg.allow,
                                         threads=threads)
            for i in range(len(queries)):
                found[i].append((si, cand[i]))
    return [_funnel_finish(segments, q, quantize_query(q, calibration), f, k, rescore_f16)
            for q, f in zip(queries, found)]


def _funnel_finish(segments: Sequence[Segment], query: np.ndarray, qq: QuantQuery,
                   found: list, k: int, rescore_f16: bool) -> tuple[np.ndarray, np.ndarray]:
    """From each segment's Hamming candidates [(segment, local rows)] to the k best rows
    of one query: int8 rescoring, then float16 for the best 4k when stored."""
    all_scores, all_rows, all_seg = [], [], []
    for si, cand in found:
        if len(cand) == 0:
            continue
        all_scores.append(dot_i8_rescore(segments[si].int8, qq, cand))
        all_rows.append(cand)
        all_seg.append(np.full(len(cand), si, dtype=np.int64))
    if not all_rows:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores = np.concatenate(all_scores)
    local = np.concatenate(all_rows)
    seg_of = np.concatenate(all_seg)
    starts = np.array([s.row_start for s in segments], dtype=np.int64)
    rows = starts[seg_of] + local
    have_f16 = rescore_f16 and all(s.f16 is not None for s in segments)
    if have_f16:
        # exact scores for the best int8 candidates (a few times k covers int8's error)
        keep = np.lexsort((rows, -scores))[:max(4 * k, k)]
        exact = np.empty(len(keep), dtype=np.float32)
        for si in np.unique(seg_of[keep]):
            sel = keep[seg_of[keep] == si]
            exact[np.isin(keep, sel)] = f16_scores(segments[si].f16, query, local[sel])
        scores, rows = exact, rows[keep]
    s, r = best_k(scores.astype(np.float32), rows, k)
    return s, r


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / |truth| (rows per query in each row)."""
    hits = [len(np.intersect1d(f, t)) / max(len(t), 1) for f, t in zip(found, truth)]
    return float(np.mean(hits)) if hits else 1.0


def choose_m(vectors: np.ndarray, *, k: int = 10, target: float = 0.95,
             sample: int = 200, seed: int = 0, candidates: Sequence[int] = DEFAULT_M_CANDIDATES,
             calibration: np.ndarray | None = None, threads: int | None = None,
             codes: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[int | None, dict[int, float]]:
    """The smallest m whose funnel (binary -> int8, no float16) reaches recall@k >= target
    against exact float32 search, measured with `sample` of the rows as queries (each
    query's own row excluded). Returns (m or None if no candidate reaches it, {m: recall}).
    `codes` = (binary, int8) of `vectors` when the caller has already encoded them with
    `calibration`."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    k = check_k(k)
    sample = check_k(sample, "sample")  # recall over no queries would read as 1.0
    if n <= k + 1:
        return 1, {1: 1.0}
    cal = codecs.calibrate_int8(x) if calibration is None else calibration
    binary, int8 = codes if codes is not None else (codecs.sign_bits(x),
                                                     codecs.quantize_int8(x, cal))
    seg = Segment(binary, int8, None)
    rng = np.random.default_rng(seed)
    qrows = rng.choice(n, size=min(sample, n), replace=False)
    truth = []
    for r in qrows:
        s = x @ x[r]
        s[r] = -np.inf
        truth.append(best_k(s, np.arange(n), k)[1])
    recalls: dict[int, float] = {}
    for m in candidates:
        found = []
        for r in qrows:
            _, rows = funnel_search([seg], cal, x[r], k + 1, m=m, rescore_f16=False,
                                    threads=threads)
            found.append(rows[rows != r][:k])
        recalls[m] = recall_at_k(found, truth)
        if recalls[m] >= target:
            return m, recalls
    return None, recalls
