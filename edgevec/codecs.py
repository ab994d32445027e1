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
