"""Vector codecs: float32 -> packed sign bits, int8 with per-dimension calibration, float16.

Bit order (fixed by formats/SPEC.md): dimension j is bit (j % 64) of uint64 word j // 64,
set when the value is > 0. Bits past `dim` in the last word are zero.

int8: a calibration array C of shape [2, dim] float32 holds, per dimension, an offset
C[0] and a scale C[1] > 0; code = clip(round((x - C[0]) / C[1]), -127, 127) and
x ~= C[0] + C[1] * code. Values outside the calibrated range are clipped, never wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def float8_int_table(kind: str) -> tuple[np.ndarray, int]:
    """(int64 [256], shift): every finite float8 value is a whole multiple of
    2**-shift (E4M3: 2**-9, E5M2: 2**-16), so table[code] = value * 2**shift exactly, and
    a dot product of float8 codes with an integer query is exact integer arithmetic: the
    same on every CPU, in NumPy and in the kernel. NaN and infinity codes map to 0 (an
    encoder never makes them; a reader checks for them)."""
    shift = {"e4m3": 9, "e5m2": 16}[kind]
    table = float8_table(kind).astype(np.float64)
    out = np.where(np.isfinite(table), table * 2.0 ** shift, 0.0)
    return out.astype(np.int64), shift  # whole numbers (tested)


def float8_max(kind: str) -> float:
    t = float8_table(kind)
    return float(np.nanmax(t[np.isfinite(t)]))


def quantize_float8(x: np.ndarray, scale: np.ndarray, kind: str) -> np.ndarray:
    """float32 [n, d] / scale (per dimension [d] or one float) -> uint8 float8 codes, the
    nearest finite value (ties to the lower magnitude), saturating at the largest.

    Computed from the float32 bits, not searched: y = |x / scale| has exponent E (at
    least the smallest normal one: below it the grid is the subnormals'), the grid step
    there is 2^(E - mantissa bits), and k = y / step rounds up only from above .5 (ceil(k
    - 0.5); both exact, k < 2^(m+1)). Positive codes grow with their values, so
    saturating is a min over codes."""
    e_bits, m_bits, bias = FLOAT8[kind]
    y = np.abs(np.asarray(x, dtype=np.float32) / np.asarray(scale, dtype=np.float32))
    exp = np.maximum(((y.view(np.uint32) >> 23) & 0xFF).astype(np.int32) - 127, 1 - bias)
    step_bits = (exp - m_bits + 127) << 23
    k = y * ((254 << 23) - step_bits).view(np.float32)  # y / step, exactly
    r = np.ceil(k - np.float32(0.5)).astype(np.int32)
    carry = r >> (m_bits + 1)  # rounded up into the next binade: r = 2^(m+1)
    exp, r = exp + carry, r >> carry
    normal = r >= (1 << m_bits)
    code = np.where(normal, ((exp + bias) << m_bits) + r - (1 << m_bits), r)
    top = int(np.flatnonzero(float8_table(kind)[:128] == float8_max(kind))[0])
    code = np.minimum(code, top).astype(np.uint8)
    return np.where(np.asarray(x) < 0, code | np.uint8(0x80), code).astype(np.uint8)


def float8_scale(x: np.ndarray, kind: str) -> np.ndarray:
    """Per-dimension scales float32 [d] that map the largest |value| of each dimension of
    x [n, d] to the largest finite float8 value (1.0 for a dimension that is all zeros);
    later rows beyond it saturate."""
    top = np.abs(np.asarray(x, dtype=np.float32)).max(axis=0)
    return np.where(top > 0, top / np.float32(float8_max(kind)), 1.0).astype("<f4")


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


def random_rotation(n: int, seed: int) -> np.ndarray:
    """A seeded random orthogonal matrix float64 [n, n]: Gram-Schmidt (twice) over
    Gaussian rows, with every sum an einsum in a fixed order (not LAPACK), so it is the
    same on every CPU."""
    a = np.random.default_rng(seed).normal(size=(n, n))
    q = np.zeros((n, n))
    for i in range(n):
        v = a[i]
        for _ in range(2):
            v = v - np.einsum("j,jd->d", np.einsum("jd,d->j", q[:i], v, optimize=False),
                              q[:i], optimize=False)
        q[i] = v / np.sqrt(np.einsum("d,d->", v, v, optimize=False))
    return q


def rotate(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """x [n, d] @ matrix[k, d].T as float32, summed in float64 in a fixed order (NumPy's
    einsum loop, not BLAS, whose kernels and so whose roundings change with the CPU): the
    same bits on every machine, so stored codes and query tables do not depend on it."""
    return np.einsum("nd,kd->nk", np.asarray(x, dtype=np.float64),
                     np.asarray(matrix, dtype=np.float64), optimize=False).astype(np.float32)


PROJECTIONS = ("pca", "prefix")


@dataclass(frozen=True)
class Projection:
    """A stored projection from `input_dim` to `dims` dimensions, applied to every row
    before it is encoded and to every query before it is scored (issue 14).

    "pca": rows y = P (x - mean), queries z = P q (not centred), P [dims, input_dim]
    orthonormal rows spanning the `dims` principal directions fitted on the first batch,
    turned by a random rotation so that every stored dimension carries an equal share of
    the variance (as raw embedding dimensions do: sign bits and per-dimension int8 need
    it; on the principal axes themselves a 1-bit funnel lost a third of its recall). Then
    z . y = q . x - q . mean up to what the dropped directions hold, so adding `offset` =
    q . mean back makes a score an estimate of q . x itself (a cosine stays a cosine) and
    leaves the ranking alone. "prefix": the first `dims` values (a Matryoshka model's own
    cut), L2-normalised again when `normalise` (metric cosine); offset 0."""

    kind: str
    dims: int
    input_dim: int
    normalise: bool = False
    mean: np.ndarray | None = None
    components: np.ndarray | None = None

    def rows(self, x: np.ndarray) -> np.ndarray:
        """float32 [n, input_dim] -> float32 [n, dims], the vectors the codes store."""
        if self.kind == "pca":
            return rotate(np.asarray(x, dtype=np.float32) - self.mean, self.components)
        return self._cut(x)

    def queries(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 [nq, input_dim] -> (float32 [nq, dims] to score, float64 [nq] offset to
        add to each query's scores)."""
        if self.kind == "pca":
            q64 = np.asarray(q, dtype=np.float64)
            return rotate(q, self.components), np.einsum("nd,d->n", q64, self.mean,
                                                         optimize=False)
        return self._cut(q), np.zeros(len(q))

    def centred(self, q: np.ndarray) -> np.ndarray:
        """P (q - mean) [nq, dims]: the query as the rows are stored, centred (a first
        stage's sign bits: they then compare like with like)."""
        if self.kind != "pca":
            return self._cut(q)
        return rotate(np.asarray(q, dtype=np.float32) - self.mean, self.components)

    def restore(self, y: np.ndarray) -> np.ndarray:
        """Stored [n, dims] -> the nearest [n, input_dim] the projection allows (pca: mean
        + P^T y; prefix: the cut with zeros after it)."""
        if self.kind == "pca":
            return (self.mean + rotate(y, self.components.T)).astype(np.float32)
        out = np.zeros((len(y), self.input_dim), dtype=np.float32)
        out[:, :self.dims] = y
        return out

    def _cut(self, x: np.ndarray) -> np.ndarray:
        y = np.array(np.asarray(x, dtype=np.float32)[:, :self.dims])
        if self.normalise:
            norm = np.linalg.norm(y.astype(np.float64), axis=1)
            y = (y / np.where(norm > 0, norm, 1.0)[:, None]).astype(np.float32)
        return y

    def matrix(self) -> np.ndarray:
        """The stored form of a pca projection: float32 [dims + 1, input_dim], the mean
        then the components."""
        return np.vstack([self.mean[None], self.components]).astype(np.float32)


def fit_projection(x: np.ndarray, dims: int) -> Projection:
    """A pca Projection of rows float32 [n, d] to `dims` dimensions (see Projection)."""
    mean, components = fit_pca(x, dims)
    turned = np.einsum("ij,jd->id", random_rotation(dims, dims), components.astype(np.float64),
                       optimize=False)
    return Projection("pca", dims, x.shape[1], mean=mean, components=turned.astype(np.float32))


# --- transform codes (issue 14): a stored rotation, then bits per dimension by variance --
#
# "Customized bits per dimension" done the classic way: rotate onto the principal axes
# (all of them: dot products are kept), give each axis a scalar quantiser of 0-4 bits
# chosen greedily by how much it lowers the expected squared error (reverse
# water-filling), and quantise each axis in units of its standard deviation. Levels:
# Lloyd-Max for a Gaussian, or uniform with the best step (a code's value is then linear
# in its bits: the form a bit-plane popcount scan needs).

MAX_BITS = 6


def _gaussian_grid() -> tuple[np.ndarray, np.ndarray]:
    z = np.linspace(-9, 9, 72_001)
    return z, np.exp(-z * z / 2) / np.sqrt(2 * np.pi) * (z[1] - z[0])


def _distortion(lv: np.ndarray) -> float:
    """The mean squared error of nearest-level quantisation of a unit Gaussian."""
    z, w = _gaussian_grid()
    near = lv[np.searchsorted((lv[1:] + lv[:-1]) / 2, z)]
    return float(np.sum(w * (z - near) ** 2))


_LEVELS: dict = {}


def levels(bits: int, quantizer: str) -> np.ndarray:
    """The 2**bits reconstruction levels of a unit Gaussian, ascending, float32:
    "lloyd" (Lloyd-Max: each level the mean of its cell, computed on a fixed grid) or
    "uniform" (equal steps, the step minimising the squared error)."""
    key = (bits, quantizer)
    if key not in _LEVELS:
        z, w = _gaussian_grid()
        offsets = np.arange(2 ** bits) - (2 ** bits - 1) / 2
        if quantizer == "lloyd":  # each level the mean of its cell, until it settles
            import math
            cdf = np.vectorize(lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2))))
            lv = levels(bits, "uniform").astype(np.float64)
            for _ in range(100_000):
                edges = np.concatenate([[-np.inf], (lv[1:] + lv[:-1]) / 2, [np.inf]])
                pdf = np.exp(-edges ** 2 / 2) / np.sqrt(2 * np.pi)
                new = (pdf[:-1] - pdf[1:]) / np.diff(cdf(edges))
                if np.abs(new - lv).max() < 1e-10:
                    break
                lv = new
        else:
            best = 1.0
            for width in (1.0, 0.05, 0.0025):  # coarse to fine, 41 steps each
                steps = np.clip(np.linspace(best - width, best + width, 41), 1e-3, None)
                best = float(steps[int(np.argmin([_distortion(offsets * t)
                                                  for t in steps]))])
            lv = offsets * best
        lv = (lv - lv[::-1]) / 2  # exactly symmetric
        _LEVELS[key] = (lv.astype(np.float32), _distortion(lv))
    return _LEVELS[key][0]


def distortion(bits: int, quantizer: str) -> float:
    """The squared error `levels(bits, quantizer)` leaves of a unit Gaussian (1 at 0 bits)."""
    if bits == 0:
        return 1.0
    levels(bits, quantizer)
    return _LEVELS[bits, quantizer][1]


def allocate_bits(variance: np.ndarray, budget: int, quantizer: str = "uniform",
                  max_bytes: int | None = None) -> np.ndarray:
    """int [d] bits per dimension (0..MAX_BITS) summing to min(budget, MAX_BITS * d):
    each bit goes where it removes the most expected squared error (ties: lower
    dimension). With `max_bytes`, bits are added by the same rule for as long as the
    packed code (transform_pack: each bit plane rounded up to whole bytes) fits in that
    many bytes, so no plane pads with unused bits; `budget` is then ignored."""
    dist = np.array([distortion(b, quantizer) for b in range(MAX_BITS + 1)])
    variance = np.asarray(variance, dtype=np.float64)
    bits = np.zeros(len(variance), dtype=np.int64)
    counts = np.zeros(MAX_BITS + 1, dtype=np.int64)  # axes with more than p bits
    steps = MAX_BITS * len(variance) if max_bytes is not None else \
        min(budget, MAX_BITS * len(variance))
    for _ in range(steps):
        nxt = np.minimum(bits + 1, MAX_BITS)
        gain = np.where(bits < MAX_BITS, variance * (dist[bits] - dist[nxt]), -1.0)
        if max_bytes is not None:
            used = int(np.sum(-(-counts // 8)))
            grows = (counts % 8 == 0)[bits]  # this bit opens a new byte of its plane
            gain = np.where(grows & (used + 1 > max_bytes), -1.0, gain)
        best = int(np.argmax(gain))
        if gain[best] < 0:
            break
        counts[bits[best]] += 1
        bits[best] += 1
    return bits


def fit_transform_code(sample: np.ndarray, budget: int, quantizer: str = "uniform",
                       max_bytes: int | None = None) -> dict:
    """A transform code fitted on `sample` [n, d] for `budget` bits per row (or as many
    as fit in `max_bytes` packed, see allocate_bits): mean [d], rotation [d, d] (rows:
    principal axes), scale [d] (each axis' standard deviation), bits [d]."""
    mean, rotation = fit_pca(sample, sample.shape[1])
    y = rotate(np.asarray(sample, dtype=np.float32) - mean, rotation)
    scale = np.maximum(y.std(axis=0), 1e-12).astype(np.float32)
    return {"mean": mean, "rotation": rotation, "scale": scale, "quantizer": quantizer,
            "bits": allocate_bits(scale.astype(np.float64) ** 2, budget, quantizer,
                                  max_bytes)}


def transform_encode(x: np.ndarray, code: dict) -> np.ndarray:
    """float32 [n, d] -> uint8 [n, d] level index per axis (0 where an axis has no bits)."""
    y = rotate(np.asarray(x, dtype=np.float32) - code["mean"], code["rotation"]) / code["scale"]
    out = np.zeros(y.shape, dtype=np.uint8)
    for b in range(1, MAX_BITS + 1):
        axes = np.flatnonzero(code["bits"] == b)
        if len(axes):
            lv = levels(b, code["quantizer"])
            out[:, axes] = np.searchsorted((lv[1:] + lv[:-1]) / 2, y[:, axes])
    return out


def transform_decode(codes: np.ndarray, code: dict) -> np.ndarray:
    """uint8 level indexes -> float32 [n, d] in the rotated space, mean removed (score a
    query q with (q @ rotation.T) @ decoded.T: the mean's share is the same for every
    row)."""
    out = np.zeros(codes.shape, dtype=np.float32)
    for b in range(1, MAX_BITS + 1):
        axes = np.flatnonzero(code["bits"] == b)
        if len(axes):
            out[:, axes] = levels(b, code["quantizer"])[codes[:, axes]] * code["scale"][axes]
    return out


def transform_planes(code: dict) -> tuple[np.ndarray, list[int]]:
    """The packed layout of a transform code (uniform levels): axes ordered by bits,
    most first (`order`), and how many axes each bit plane holds (plane p: every axis with
    more than p bits, the most significant bits first). A row's bytes are the planes one
    after another, plane p taking ceil(n_p / 8) bytes: bit i of its byte t is axis
    order[8t + i]."""
    bits = np.asarray(code["bits"])
    order = np.argsort(-bits, kind="stable")
    return order, [int(np.count_nonzero(bits > p)) for p in range(int(bits.max(initial=0)))]


def transform_pack(idx: np.ndarray, code: dict) -> np.ndarray:
    """uint8 [n, d] level indexes (transform_encode) -> uint8 [n, bytes] bit planes."""
    order, planes = transform_planes(code)
    bits = np.asarray(code["bits"])
    out = []
    for p, count in enumerate(planes):
        axes = order[:count]
        shift = (bits[axes] - 1 - p).astype(np.uint8)  # the axis' bit of weight 2**shift
        plane = (idx[:, axes] >> shift) & 1
        out.append(np.packbits(plane.astype(np.uint8), axis=1, bitorder="little"))
    if not out:
        return np.zeros((len(idx), 0), np.uint8)
    return np.ascontiguousarray(np.concatenate(out, axis=1))


TRANSFORM_BLOCK = 512  # rows per byte-major block (edgevec.kernels.transform)


def transform_blocks(packed: np.ndarray, width: int = TRANSFORM_BLOCK) -> np.ndarray:
    """uint8 [n, bytes] packed codes -> uint8 [ceil(n / width), bytes, width]: blocks of
    `width` rows, byte-major (the last block padded with zero codes)."""
    n, nbytes = packed.shape
    nb = -(-n // width)
    padded = np.zeros((nb * width, nbytes), dtype=np.uint8)
    padded[:n] = packed
    return np.ascontiguousarray(padded.reshape(nb, width, nbytes).transpose(0, 2, 1))


def transform_lut(queries: np.ndarray, code: dict) -> tuple[np.ndarray, np.ndarray]:
    """float32 queries [nq, d] -> (lut float32 [nq, bytes, 256], offset float64 [nq]):
    a row's estimated dot product <q, decoded row> is offset + the sum over its bytes t
    of lut[t, byte t], added in byte order (edgevec.search.lut_topk). Every table entry
    is >= 0 (each table is shifted by its smallest entry, and the shifts go to the
    offset), so the float32 bits of a sum order like its value. Built with elementwise
    float32 operations in a fixed order: the same bits on every CPU."""
    if code["quantizer"] != "uniform":
        from .errors import InvalidInput
        raise InvalidInput("a table scan over bit planes needs uniform levels, not "
                           f"{code['quantizer']!r}")
    order, planes = transform_planes(code)
    bits = np.asarray(code["bits"])
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    rotated = rotate(q, code["rotation"])
    step = np.array([0.0] + [float(np.diff(levels(b, "uniform"))[0])
                             for b in range(1, MAX_BITS + 1)], dtype=np.float32)
    w = rotated * (code["scale"] * step[bits])  # a level index' weight, per axis
    half = (2.0 ** bits - 1) / 2  # index - half = the level in steps
    offset = (np.einsum("nd,d->n", q.astype(np.float64), code["mean"].astype(np.float64),
                        optimize=False)
              - (w.astype(np.float64) * half).sum(axis=1))
    weights = []  # per plane byte: the weights of its 8 bits (0 past the plane's axes)
    for p, count in enumerate(planes):
        axes = order[:count]
        u = w[:, axes] * (2.0 ** (bits[axes] - 1 - p)).astype(np.float32)
        pad = -count % 8
        u = np.concatenate([u, np.zeros((len(q), pad), np.float32)], axis=1)
        weights.append(u.reshape(len(q), -1, 8))
    if not weights:
        return np.zeros((len(q), 0, 256), np.float32), offset
    weights = np.concatenate(weights, axis=1)  # [nq, bytes, 8]
    lut = np.zeros(weights.shape[:2] + (256,), dtype=np.float32)
    for v in range(1, 256):  # table[v] = table[v without its lowest bit] + that bit
        low = (v & -v).bit_length() - 1
        lut[:, :, v] = lut[:, :, v & (v - 1)] + weights[:, :, low]
    shift = lut.min(axis=2)
    lut -= shift[:, :, None]
    return lut, offset + shift.astype(np.float64).sum(axis=1)


def transform_bytes(bits) -> int:
    """Bytes per row of a packed transform code with these bits per axis."""
    bits = np.asarray(bits)
    return sum(-(-int(np.count_nonzero(bits > p)) // 8) for p in range(int(bits.max(initial=0))))


def transform_unpack(packed: np.ndarray, code: dict) -> np.ndarray:
    """uint8 [n, bytes] bit planes (transform_pack) -> uint8 [n, d] level indexes."""
    order, planes = transform_planes(code)
    bits = np.asarray(code["bits"])
    idx = np.zeros((len(packed), len(bits)), dtype=np.uint8)
    start = 0
    for p, count in enumerate(planes):
        nbytes = -(-count // 8)
        plane = np.unpackbits(packed[:, start:start + nbytes], axis=1,
                              bitorder="little")[:, :count]
        axes = order[:count]
        idx[:, axes] |= plane << (bits[axes] - 1 - p).astype(np.uint8)
        start += nbytes
    return idx


def block_rows(blocks: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of byte-major blocks (transform_blocks) -> uint8 [len(rows), bytes] packed."""
    width = blocks.shape[2]
    rows = np.asarray(rows, dtype=np.int64)
    return np.ascontiguousarray(blocks[rows // width, :, rows % width])


def compact_bytes(dim: int) -> int:
    """Bytes per row of the compact preset's transform code: 110 at 384 dimensions
    (about a quarter of the 432 of sign bits + int8), the same share at any other."""
    return -(-110 * dim // 384)
