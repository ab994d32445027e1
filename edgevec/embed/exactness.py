"""Are onnxruntime's integer matrix products exact on this CPU?

onnxruntime picks its uint8 x int8 GEMM by CPU. With AVX-512 VNNI (or AVX-VNNI, or ARM's
dot-product instructions) products accumulate in int32: exact. With AVX2 alone it uses
`vpmaddubsw`, which adds each pair of products into a *saturating* int16: with 8-bit
weights a pair can reach 2 * 255 * 127 = 64770 and is clipped to 32767, so the same model
gives other vectors on such a CPU. edgevec's dyn8 keeps weights within +-63 (at most
32130 a pair) so that this cannot happen; `integer_products_exact` measures it rather
than trusting a table of CPU features: it runs the worst case through onnxruntime and
compares with exact integers.

The probe graph is written with a few lines of protobuf encoding, so that checking needs
onnxruntime alone (the `onnx` package is only an extra, for building models).
"""

from __future__ import annotations

import functools

import numpy as np

_K, _N = 64, 16  # inner and output dimensions of the probe (several SIMD blocks)
_UINT8, _INT8, _INT32 = 2, 3, 6  # onnx TensorProto data types


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    """One protobuf field: a varint for an int, length-delimited for bytes or str."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor_type(elem: int, dims: list[int | str]) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d))
                     for d in dims)
    return _field(1, _field(1, elem) + _field(2, shape))  # TypeProto.tensor_type


def _initializer(name: str, array: np.ndarray, elem: int) -> bytes:
    return (b"".join(_field(1, d) for d in array.shape) + _field(2, elem)
            + _field(8, name) + _field(9, array.tobytes()))


def probe_model(weights: np.ndarray) -> bytes:
    """ONNX bytes of y = MatMulInteger(a, weights, a_zero_point=128): `a` uint8 [batch, K]
    fed at run time, `weights` int8 [K, N] stored in the graph as dyn8 stores them."""
    node = (_field(1, "a") + _field(1, "w") + _field(1, "azp") + _field(2, "y")
            + _field(4, "MatMulInteger"))
    graph = (_field(1, node) + _field(2, "edgevec-probe")
             + _field(5, _initializer("w", weights.astype(np.int8), _INT8))
             + _field(5, _initializer("azp", np.array(128, np.uint8), _UINT8))
             + _field(11, _field(1, "a") + _field(2, _tensor_type(_UINT8, ["batch", _K])))
             + _field(12, _field(1, "y") + _field(2, _tensor_type(_INT32, ["batch", _N]))))
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(8, opset) + _field(7, graph)  # ir_version 8


def probe_inputs(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Worst cases for a saturating pair sum, plus seeded random rows: activations
    uint8 [8, K] and weights int8 [K, N] within +-levels."""
    rng = np.random.default_rng(0)
    w = rng.integers(-levels, levels + 1, size=(_K, _N))
    w[:, 0], w[:, 1] = levels, -levels  # columns that saturate first
    a = rng.integers(0, 256, size=(8, _K))
    a[0], a[1] = 255, 0
    a[2, ::2], a[2, 1::2] = 255, 0
    return a.astype(np.uint8), w.astype(np.int8)


@functools.lru_cache(maxsize=None)
def integer_products_exact(levels: int = 127) -> bool:
    """True when onnxruntime's uint8 x int8 MatMulInteger is exact on this CPU for
    weights within +-levels (1..127). Runs once per process and level (~10 ms)."""
    import onnxruntime as ort
    if not 1 <= levels <= 127:
        raise ValueError(f"levels must be in 1..127, got {levels}")
    a, w = probe_inputs(levels)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(probe_model(w), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"a": a})[0]
    want = (a.astype(np.int64) - 128) @ w.astype(np.int64)
    return bool(np.array_equal(got, want))
