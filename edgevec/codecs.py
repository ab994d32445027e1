"""Vector codecs: float32 -> packed sign bits, int8 with per-dimension calibration, float16.

Bit order (fixed by formats/SPEC.md): dimension j is bit (j % 64) of uint64 word j // 64,
set when the value is > 0. Bits past `dim` in the last word are zero.

int8: a calibration array C of shape [2, dim] float32 holds, per dimension, an offset
C[0] and a scale C[1] > 0; code = clip(round((x - C[0]) / C[1]), -127, 127) and
x ~= C[0] + C[1] * code. Values outside the calibrated range are clipped, never wrapped.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127
# Batches smaller than this are too small to estimate per-dimension ranges; they get one
# symmetric range for every dimension instead.
MIN_CALIBRATION_ROWS = 256


def words_for(dim: int) -> int:
    return (dim + 63) // 64


def sign_bits(x: np.ndarray) -> np.ndarray:
    """float32 [n, d] -> uint64 [n, ceil(d / 64)] packed sign bits (little-endian order)."""
    n, d = x.shape
    packed = np.packbits(x > 0, axis=1, bitorder="little")
    out = np.zeros((n, words_for(d) * 8), dtype=np.uint8)
    out[:, :packed.shape[1]] = packed
    return out.view("<u8")


def calibrate_int8(x: np.ndarray) -> np.ndarray:
    """float32 [n, d] sample -> calibration float32 [2, d] (offset, scale)."""
    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    if n >= MIN_CALIBRATION_ROWS:
        lo = np.quantile(x, 0.0005, axis=0)
        hi = np.quantile(x, 0.9995, axis=0)
        offset = (hi + lo) / 2
        half = (hi - lo) / 2
    else:
        offset = np.zeros(d, dtype=np.float32)
        half = np.full(d, float(np.abs(x).max()) if n else 1.0, dtype=np.float32)
    half = np.maximum(half, 1e-6)
    return np.stack([offset, half / INT8_MAX]).astype("<f4")


def quantize_int8(x: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """float32 [n, d] -> int8 [n, d] with stored calibration; out-of-range values clip."""
    q = np.rint((x - calibration[0]) / calibration[1])
    np.clip(q, -INT8_MAX, INT8_MAX, out=q)
    return q.astype(np.int8)


def dequantize_int8(codes: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    return (calibration[0] + calibration[1] * codes.astype(np.float32)).astype(np.float32)


def to_f16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype="<f2")


# --- multi-bit residual binary codes (issue 14; the training-free baseline of BEBR) ------

def residual_planes(x: np.ndarray, planes: int, scales: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """float32 [n, d] -> (bits uint64 [n, planes, words], scales float32 [n, planes]).

    Plane 0 holds the signs of x; plane p the signs of what planes 0..p-1 leave,
    r_p = x - sum_{i<p} scale_i * s_i with s = +-1. A row's scale for plane p is
    mean |r_p| (the least-squares scale of a sign vector), unless `scales` [planes] fixes
    one per plane for every row. x ~= sum_p scale_p * s_p."""
    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    bits = np.empty((n, planes, words_for(d)), dtype=np.uint64)
    out = np.empty((n, planes), dtype=np.float32)
    r = x.copy()
    for p in range(planes):
        bits[:, p] = sign_bits(r)
        a = np.abs(r).mean(axis=1) if scales is None else np.full(n, scales[p], np.float32)
        out[:, p] = a
        r -= a[:, None] * np.where(r > 0, 1.0, -1.0).astype(np.float32)
    return bits, out


def unpack_signs(bits: np.ndarray, dim: int) -> np.ndarray:
    """uint64 [..., words] packed sign bits -> float32 [..., dim] of +-1."""
    raw = np.unpackbits(np.ascontiguousarray(bits).view(np.uint8), axis=-1,
                        bitorder="little")[..., :dim]
    return raw.astype(np.float32) * 2 - 1


def residual_decode(bits: np.ndarray, scales: np.ndarray, dim: int) -> np.ndarray:
    """(bits [n, planes, words], scales [n, planes]) -> float32 [n, dim]."""
    return np.einsum("np,npd->nd", scales, unpack_signs(bits, dim)).astype(np.float32)


# --- float8 (issue 14): E4M3 (OCP "fn": no infinities, max 448) and E5M2 (max 57344) -----

FLOAT8 = {"e4m3": (4, 3, 7), "e5m2": (5, 2, 15)}  # exponent bits, mantissa bits, bias


def float8_table(kind: str) -> np.ndarray:
    """The 256 values of a float8 code as float32, indexed by the code byte; NaN codes
    (E4M3: S.1111.111; E5M2: exponent all ones with a mantissa) decode to NaN and the
    E5M2 infinities to +-inf (an encoder never makes them)."""
    e_bits, m_bits, bias = FLOAT8[kind]
    code = np.arange(256)
    sign = np.where(code & 0x80, -1.0, 1.0)
    e = (code >> m_bits) & ((1 << e_bits) - 1)
    m = code & ((1 << m_bits) - 1)
    normal = (1 + m / (1 << m_bits)) * np.exp2(e.astype(np.float64) - bias)
    subnormal = (m / (1 << m_bits)) * np.exp2(1.0 - bias)
    value = sign * np.where(e == 0, subnormal, normal)
    top = (1 << e_bits) - 1
    if kind == "e4m3":
        value[(e == top) & (m == (1 << m_bits) - 1)] = np.nan
    else:
        value[(e == top) & (m != 0)] = np.nan
        value[(e == top) & (m == 0)] = sign[(e == top) & (m == 0)] * np.inf
    return value.astype(np.float32)


def float8_max(kind: str) -> float:
    t = float8_table(kind)
    return float(np.nanmax(t[np.isfinite(t)]))


def quantize_float8(x: np.ndarray, scale: np.ndarray, kind: str) -> np.ndarray:
    """float32 [n, d] / scale (per dimension [d] or one float) -> uint8 float8 codes, the
    nearest finite value (ties to the lower magnitude), saturating at the largest."""
    table = float8_table(kind)
    positive = np.flatnonzero((table >= 0) & np.isfinite(table) & (np.arange(256) < 128))
    values = table[positive]
    order = np.argsort(values, kind="stable")
    values, positive = values[order], positive[order]
    y = np.abs(np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32))
    y = np.minimum(y, values[-1])
    hi = np.clip(np.searchsorted(values, y), 1, len(values) - 1)
    lo = hi - 1
    pick = np.where(values[hi] - y < y - values[lo], hi, lo)
    code = positive[pick].astype(np.uint8)
    return np.where(np.asarray(x) < 0, code | np.uint8(0x80), code).astype(np.uint8)


def dequantize_float8(codes: np.ndarray, scale: np.ndarray, kind: str) -> np.ndarray:
    return (float8_table(kind)[codes] * np.asarray(scale, dtype=np.float32)).astype(np.float32)


# --- stored projections (issue 14) -------------------------------------------------------

def fit_pca(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 [n, d] sample -> (mean float32 [d], components float32 [dims, d]): the
    directions of largest variance, each signed so its largest entry is positive (a
    deterministic sign)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    cov = np.cov(x - mean, rowvar=False)
    values, vectors = np.linalg.eigh(cov)
    top = vectors[:, np.argsort(values)[::-1][:dims]].T
    flip = np.sign(top[np.arange(dims), np.abs(top).argmax(axis=1)])
    return mean.astype(np.float32), (top * flip[:, None]).astype(np.float32)


def project(x: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """x [n, d] -> [n, dims] in the fitted basis, L2-normalised (cosine stays cosine)."""
    y = (np.asarray(x, dtype=np.float32) - mean) @ components.T
    norm = np.linalg.norm(y, axis=1, keepdims=True)
    return (y / np.maximum(norm, 1e-12)).astype(np.float32)
