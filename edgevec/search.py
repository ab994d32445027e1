"""The scans over the kernels: input checks, thread control, Hamming, int8 and float16
scans, and the selection of the k best.

Every public function here validates its arrays (dtype, shape, C-contiguity, finite
queries, mask length, k) before a kernel runs: the kernels trust their input, and in a
Numba kernel an out-of-bounds index is a crash, not an exception. Inputs are handed to
the kernels as read-only views, so one compiled specialisation serves memory-mapped and
in-memory arrays alike.

Results are ordered by score (distance ascending, similarity descending), ties by lower
row, so they do not depend on threads, chunking or batching. The funnel that chains
these scans is edgevec.funnel.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .errors import DimensionMismatch, InvalidInput
from .validate import check_choice, check_k, check_threads, check_vectors

MAX_ROWS_PER_CALL = 2**31 - 1
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


def _eligible(k: int, n: int, allow) -> tuple[int, np.ndarray]:
    """(k checked and cut to the eligible rows, the row mask) of a top-k scan of n rows."""
    mask = check_mask(allow, n)
    return min(check_k(k), n if allow is None else int(np.count_nonzero(mask))), mask


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


# --- threads ----------------------------------------------------------------------------------


@contextmanager
def threads_for(threads: int | None):
    """Run parallel kernels on `threads` threads (Numba's setting is per calling thread;
    restored), and launch them one at a time where Numba's threading layer cannot take
    launches from several threads at once (see concurrent_launches)."""
    import numba
    threads = check_threads(threads)
    if threads is not None:
        threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    old = numba.get_num_threads()
    if threads is None:
        threads = old
    elif threads != old:
        numba.set_num_threads(threads)
    try:
        if concurrent_launches():
            yield threads
        else:
            with _LAUNCH_LOCK:
                yield threads
    finally:
        if threads != old:
            numba.set_num_threads(old)


_LAUNCH_LOCK = threading.Lock()
_LAYER: list[str] = []  # Numba's threading layer, once a parallel kernel has chosen it


def concurrent_launches() -> bool:
    """Whether parallel kernels may be entered by several threads at once. The kernels
    release the GIL (edgevec.kernels), and Numba's "tbb" and "omp" threading layers take
    concurrent launches; its "workqueue" layer (the fallback when neither TBB nor an
    OpenMP runtime is installed, as in a plain pip install on macOS) aborts the process
    when two threads enter it at once. Until the first parallel kernel has run, the
    layer is not chosen yet: False then too."""
    if not _LAYER:
        import numba
        if numba.config.DISABLE_JIT:
            return True  # plain Python: nothing parallel to enter
        try:
            _LAYER.append(numba.threading_layer())
        except ValueError:  # not chosen yet
            return False
    return _LAYER[0] in ("tbb", "omp")


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
    Threads share the one ENGINE and update it without a lock: a lost update of
    `numpy_seconds` only delays the switch, and either engine gives the same answer.
    """

    NUMBA_LOAD_SECONDS = 0.5
    NUMPY_MAX_WORDS = 1 << 23  # 64 MB of codes: ~90 ms in NumPy
    NUMPY_MAX_SECONDS = 0.09   # work expected to take longer goes to Numba at once

    def __init__(self) -> None:
        self.mode = os.environ.get("EDGEVEC_SCAN", "auto")
        self.numpy_seconds = 0.0
        self.numba_loaded = False

    def use_numpy(self, words: int) -> bool:
        """For a scan of `words` 64-bit words of codes."""
        return self.use_numpy_for(words * self.NUMPY_MAX_SECONDS / self.NUMPY_MAX_WORDS)

    def use_numpy_for(self, seconds: float) -> bool:
        """For work expected to take `seconds` without Numba (NumPy or Python); the
        caller adds the time it then spends to `numpy_seconds`."""
        if self.mode not in ("auto", "numba", "numpy"):
            raise InvalidInput(f"EDGEVEC_SCAN must be auto, numba or numpy, got {self.mode!r}")
        if self.mode == "numpy" or (self.mode == "auto" and not self.numba_loaded
                                    and seconds <= self.NUMPY_MAX_SECONDS
                                    and self.numpy_seconds < self.NUMBA_LOAD_SECONDS):
            return True
        self.numba_loaded = True
        return False

    def long_lived(self) -> None:
        """This process will answer many queries (a shard served by a Ray actor): use the
        kernels from the first scan on, as if the rental were already paid."""
        self.numba_loaded = True


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
    kk, mask = _eligible(k, len(codes), allow)
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
        heaps = H.new_heaps(1, _blocks(t, len(codes)), kk)[0]
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
    """A float query prepared for the int8 kernels: score ~= bias + scale * (q_i16 . codes).
    For a batch, q is int16[nq, d] and scale, bias are float64[nq]."""

    q: np.ndarray  # int16[d] or int16[nq, d]
    scale: float | np.ndarray
    bias: float | np.ndarray

    def row(self, i: int) -> "QuantQuery":
        """Query i of a batch, as a single query."""
        return QuantQuery(self.q[i], float(self.scale[i]), float(self.bias[i]))

    def scores(self, dots: np.ndarray) -> np.ndarray:
        """float64 scores from the int32 dot products (one query, or [nq, m] for a batch)."""
        if np.ndim(self.scale):
            return self.bias[:, None] + self.scale[:, None] * dots.astype(np.float64)
        return self.bias + self.scale * dots.astype(np.float64)


def quantize_queries(queries: np.ndarray, calibration: np.ndarray) -> QuantQuery:
    """Fold the per-dimension calibration into each query and round it to int16.

    With x ~= c0 + c1 * code: q . x ~= q . c0 + sum((q * c1) * code). The int16 range is
    limited so that |q_i16| * 127 * d < 2**31 (no int32 overflow). Every step works row by
    row, so a query gets the same codes alone as inside any batch."""
    q = np.asarray(queries, dtype=np.float64)
    nq, d = q.shape
    folded = q * calibration[1]
    bias = (q * calibration[0].astype(np.float64)).sum(axis=1)
    limit = min(32767, (2**31 - 1) // (127 * max(d, 1)))
    peak = np.abs(folded).max(axis=1) if d else np.zeros(nq)
    scale = np.where(peak > 0, peak / limit, 1.0)
    qi = np.rint(folded / scale[:, None]).astype(np.int16)
    qi.flags.writeable = False
    return QuantQuery(qi, scale, bias)


def quantize_query(query: np.ndarray, calibration: np.ndarray) -> QuantQuery:
    """One float32 query [d] for the int8 kernels (see quantize_queries)."""
    return quantize_queries(np.asarray(query)[None, :], calibration).row(0)


def _check_rows(rows, n: int) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise InvalidInput(f"candidate rows must be in [0, {n})")
    return _readonly(rows)


def dot_i8_rescore(codes: np.ndarray, qq: QuantQuery, rows: np.ndarray) -> np.ndarray:
    """Approximate scores (float64) of `rows` of int8 codes for a quantized query: rows
    int64[m] for one query, or int64[nq, m] (each query its own rows) for a batch."""
    codes = check_codes(codes, np.int8, "codes")
    rows = _check_rows(rows, len(codes))
    batch = qq.q.ndim == 2
    if rows.ndim != (2 if batch else 1) or (batch and len(rows) != len(qq.q)):
        raise InvalidInput(f"candidate rows of shape {list(rows.shape)} do not fit "
                           f"queries of shape {list(qq.q.shape)}")
    if qq.q.shape[-1] != codes.shape[1]:
        raise DimensionMismatch(f"query has {qq.q.shape[-1]} dims, codes {codes.shape[1]}")
    q2, r2 = (qq.q, rows) if batch else (qq.q[None, :], rows[None, :])
    if ENGINE.numba_loaded or ENGINE.mode == "numba" or r2.size * codes.shape[1] > 1 << 22:
        from .kernels.dot_i8 import dot_i8_rescore_batch as kernel
        out = np.empty(r2.shape, dtype=np.int32)
        if r2.size:
            with threads_for(_rescore_threads(len(r2))):
                kernel(codes, q2, r2, out)
    else:  # a few hundred candidate rows: not worth loading Numba for (see ScanEngine)
        out = np.einsum("qmd,qd->qm", codes[r2].astype(np.int32), q2.astype(np.int32))
    return qq.scores(out if batch else out[0])


def _rescore_threads(nq: int) -> int | None:
    """The rescoring kernels run parallel over queries: one query needs one thread (a
    team of more would only wait)."""
    return 1 if nq == 1 else None


F8_QUERY_MAX = (1 << 20) - 1  # query integers: at most 20 bits (fewer if d is huge)


def dot_f8_rescore(codes: np.ndarray, kind: str, scale: np.ndarray, queries: np.ndarray,
                   rows: np.ndarray) -> np.ndarray:
    """Scores (float64) of candidate `rows` of float8 codes (`kind` "e4m3" or "e5m2",
    per-dimension `scale` float32[d]) for float32 queries: rows int64[m] for one query
    [d], or int64[nq, m] for a batch [nq, d]. Each query folds in the scale and is rounded
    to integers of 20 bits; the codes decode through an integer table
    (codecs.float8_int_table): the dot products are exact, the same on every CPU and
    engine, and the only rounding is the query's."""
    from .codecs import FLOAT8, float8_int_table
    kind = check_choice(kind, tuple(FLOAT8), "float8 kind")
    codes = check_codes(codes, np.uint8, "codes")
    rows = _check_rows(rows, len(codes))
    q = check_vectors(queries, codes.shape[1], "queries")
    batch = np.ndim(queries) == 2
    if rows.ndim != (2 if batch else 1) or (batch and len(rows) != len(q)):
        raise InvalidInput(f"candidate rows of shape {list(rows.shape)} do not fit "
                           f"queries of shape {list(np.shape(queries))}")
    table, shift = float8_int_table(kind)
    # the largest query integer for which no dot product can leave int64
    limit = min(F8_QUERY_MAX, ((1 << 63) - 1) // (codes.shape[1] * int(np.abs(table).max())))
    folded = q.astype(np.float64) * np.asarray(scale, dtype=np.float64)
    top = np.abs(folded).max(axis=1)
    step = np.where(top > 0, top / limit, 1.0)
    qi = np.rint(folded / step[:, None]).astype(np.int64)
    r2 = rows if batch else rows[None, :]
    out = np.empty(r2.shape, dtype=np.int64)
    if ENGINE.numba_loaded or ENGINE.mode == "numba" or r2.size * codes.shape[1] > 1 << 22:
        from .kernels.dot_i8 import dot_f8_rescore_batch as kernel
        if r2.size:
            with threads_for(_rescore_threads(len(r2))):
                kernel(codes, table, qi, r2, out)
    else:  # a few hundred candidate rows: not worth loading Numba for (see ScanEngine)
        out = np.einsum("qmd,qd->qm", table[codes[r2]], qi)
    scores = out.astype(np.float64) * (step[:, None] * 2.0 ** -shift)
    return scores if batch else scores[0]


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
    kk, mask = _eligible(k, len(codes), allow)
    n = len(codes)
    if kk == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    with threads_for(threads) as t:
        heaps = new_heaps(1, max(1, min(t, n)), kk)[0]
        kernel(codes, qq.q, mask, heaps)
    keys = np.sort(heaps.ravel())[:kk]
    scores, rows = split_score_keys(keys)
    return qq.scores(scores), rows


# --- transform codes (issue 14): one table lookup per code byte ---------------------------


def lut_topk(blocks: np.ndarray, n: int, lut: np.ndarray, k: int, *,
             allow: np.ndarray | None = None, threads: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """n rows of transform codes in byte-major blocks uint8[nb, B, L]
    (edgevec.codecs.transform_blocks), lut float32[B, 256] (entries >= 0,
    codecs.transform_lut) -> (table sums float32[k'], rows int64[k']), best first, ties by
    lower row."""
    from .kernels.hamming import new_heaps
    from .kernels.topk import split_score_keys
    from .kernels.transform import lut_topk as kernel
    blocks = check_codes(blocks, np.uint8, "blocks", ndim=3)
    nb, nbytes, width = blocks.shape
    fits = isinstance(n, (int, np.integer)) and not isinstance(n, bool) and (
        n == nb == 0 or (nb - 1) * width < n <= nb * width)
    if not fits:
        raise InvalidInput(f"{nb} blocks of {width} rows cannot hold n={n!r} rows")
    lut = np.ascontiguousarray(lut, dtype=np.float32)
    if lut.shape != (nbytes, 256):
        raise DimensionMismatch(f"the tables are {lut.shape}, the codes have {nbytes} "
                                f"bytes: ({nbytes}, 256) expected")
    if not (np.isfinite(lut).all() and (lut >= 0).all()):
        raise InvalidInput("table entries must be finite and >= 0 (transform_lut makes them)")
    kk, mask = _eligible(k, int(n), allow)
    if kk == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    with threads_for(threads) as t:
        heaps = new_heaps(1, _blocks(t, nb), kk)[0]
        kernel(blocks, int(n), lut, mask, heaps)
    bits, rows = split_score_keys(np.sort(heaps.ravel())[:kk])
    return bits.view(np.float32), rows


# --- multi-bit residual sign planes ---------------------------------------------------------

QUERY_PLANES = 4  # planes a float query is cut into for the plane scan (see planes_topk)


def planes_topk(codes: np.ndarray, scales: np.ndarray, queries: np.ndarray, dim: int,
                k: int, *, query_planes: int = QUERY_PLANES, allow: np.ndarray | None = None,
                threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k over residual sign codes (edgevec.codecs.residual_planes): codes uint64[n, b,
    w], per-row plane scales float32[n, b], float32 queries [dim] or [nq, dim], each cut
    into `query_planes` residual planes (1-8; 1 = its signs alone, more = closer to the
    float query) -> (scores float32[k'] or [nq, k'], rows int64), best first, ties by
    lower row. Scores approximate the inner product with the decoded rows."""
    from .codecs import residual_planes, words_for
    from .kernels.hamming import new_heaps
    from .kernels.planes import planes_topk as kernel
    from .kernels.topk import split_score_keys
    codes = check_codes(codes, np.uint64, "codes", ndim=3)
    n, b, w = codes.shape
    dim = check_k(dim, "dim")
    if w != words_for(dim) or not 1 <= b <= 8:
        raise DimensionMismatch(f"codes of shape {list(codes.shape)} are not 1-8 planes of "
                                f"{dim}-dimensional sign bits ({words_for(dim)} words)")
    if n > MAX_ROWS_PER_CALL:
        raise InvalidInput(f"codes have {n} rows; one scan takes at most {MAX_ROWS_PER_CALL}")
    scales = check_codes(scales, np.float32, "scales")
    if scales.shape != (n, b) or not np.isfinite(scales).all():
        raise InvalidInput(f"scales must be finite float32 {[n, b]}, got shape "
                           f"{list(scales.shape)}" + ("" if scales.shape != (n, b) else
                                                      " with NaN or infinity"))
    qp = check_k(query_planes, "query_planes")
    if qp > 8:
        raise InvalidInput(f"query_planes must be 1-8, got {qp}")
    single = np.ndim(queries) == 1
    q = check_vectors(queries, dim, "queries")
    qcodes, qscales = residual_planes(q, qp)
    kk, mask = _eligible(k, n, allow)
    nq = len(q)
    if kk == 0 or nq == 0:
        out = np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
    else:
        with threads_for(threads) as t:
            heaps = new_heaps(_blocks(t, n), nq, kk)
            kernel(codes, scales, qcodes, qscales.astype(np.float64), dim, mask, heaps)
        keys = np.sort(heaps.transpose(1, 0, 2).reshape(nq, -1), axis=1)[:, :kk]
        bits, rows = split_score_keys(keys)
        bits = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits).astype(np.int32)
        out = bits.view(np.float32), rows
    return (out[0][0], out[1][0]) if single else out


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
    """The k best of float32 `scores` (descending; ties by lower row) with their `rows`:
    for one query ([m] arrays) or for each query of a batch ([nq, m] arrays)."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim == 1:
        top_s, top_r = best_k(scores[None, :], rows[None, :], k)
        return top_s[0], top_r[0]
    kk = min(k, scores.shape[1])
    at = np.arange(len(scores))[:, None]  # plain indexing: take_along_axis cost 2x here
    if rows.size and 0 <= rows.min() and rows.max() < 1 << 32:
        # one uint64 key per candidate, smaller = better: the score's bits in an order
        # that follows the float order (reversed), then the row
        bits = (scores + np.float32(0)).view(np.uint32)  # + 0 turns -0.0 into 0.0
        order = np.where(bits >> 31, bits, ~bits & np.uint32(0x7FFFFFFF))
        key = (order.astype(np.uint64) << np.uint64(32)) | rows.astype(np.uint64)
        if kk < key.shape[1]:
            part = np.argpartition(key, kk - 1, axis=1)[:, :kk]
            pick = part[at, np.argsort(key[at, part], axis=1, kind="stable")]
        else:
            pick = np.argsort(key, axis=1, kind="stable")
    else:
        pick = np.lexsort((rows, -scores), axis=1)[:, :kk]
    return scores[at, pick], rows[at, pick]


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
