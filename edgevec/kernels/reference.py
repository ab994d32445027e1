"""NumPy references of every kernel: slow, obvious, and what the tests compare against."""

from __future__ import annotations

import numpy as np


def _order(primary: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best by (primary ascending, row ascending)."""
    order = np.lexsort((rows, primary))
    return order[:k]


def popcount_rows(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(x).view(np.uint8), axis=1).sum(axis=1)


def hamming_dists(codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    return popcount_rows(codes ^ q[None, :]).astype(np.int64)


def hamming_topk(codes, q, k, allow=None) -> tuple[np.ndarray, np.ndarray]:
    """(distances int32, rows int64) of the k nearest eligible rows, ties by lower row."""
    rows = np.arange(len(codes)) if allow is None else np.flatnonzero(allow)
    d = hamming_dists(codes[rows], q)
    pick = _order(d, rows, k)
    return d[pick].astype(np.int32), rows[pick].astype(np.int64)


def dot_i8(codes, q) -> np.ndarray:
    return codes.astype(np.int64) @ q.astype(np.int64)


def dot_i8_topk(codes, q, k, allow=None) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(codes)) if allow is None else np.flatnonzero(allow)
    s = dot_i8(codes[rows], q)
    pick = _order(-s, rows, k)
    return s[pick].astype(np.int32), rows[pick].astype(np.int64)


def lut_scores(codes, lut) -> np.ndarray:
    """float32 sum of one table entry per code byte, added in byte order."""
    acc = np.zeros(len(codes), dtype=np.float32)
    for t in range(codes.shape[1]):
        acc += lut[t][codes[:, t]]
    return acc


def lut_topk(codes, lut, k, allow=None) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(codes)) if allow is None else np.flatnonzero(allow)
    s = lut_scores(codes[rows], lut)
    pick = _order(-s.astype(np.float64), rows, k)
    return s[pick], rows[pick].astype(np.int64)


def planes_scores(codes, scales, qcodes, qscales, dim) -> np.ndarray:
    """float32 [nq, n] scores of residual sign planes (kernels.planes): the same float64
    operations in the same order as the kernel, rounded to float32."""
    n, b, _ = codes.shape
    nq, bq, _ = qcodes.shape
    out = np.zeros((nq, n))
    for p in range(b):
        inner = np.zeros((nq, n))
        for r in range(bq):
            x = np.ascontiguousarray(codes[None, :, p, :] ^ qcodes[:, None, r, :])
            h = np.unpackbits(x.view(np.uint8), axis=-1).sum(axis=-1, dtype=np.int64)
            inner = inner + qscales[:, r, None] * (dim - 2 * h).astype(np.float64)
        out = out + scales[None, :, p].astype(np.float64) * inner
    return out.astype(np.float32)


def planes_topk(codes, scales, qcodes, qscales, dim, k, allow=None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per query (scores float32[nq, k'], rows int64[nq, k']), best first, ties by row."""
    rows = np.arange(len(codes)) if allow is None else np.flatnonzero(allow)
    s = planes_scores(codes[rows], scales[rows], qcodes, qscales, dim)
    picks = [_order(-si.astype(np.float64), rows, k) for si in s]
    return (np.stack([si[p] for si, p in zip(s, picks)]),
            np.stack([rows[p] for p in picks]).astype(np.int64))
