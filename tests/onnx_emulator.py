"""Run an ONNX graph with NumPy: the exact, ISA-independent emulation of a model.

Integer products (MatMulInteger) are computed exactly in int64, floats in float64, so the
result depends on the graph alone, not on which SIMD kernels onnxruntime picked for this
CPU. Covers the operators edgevec's BERT builder emits (bert_onnx.py); any other operator
is an error, so a new one cannot slip through unemulated.
"""

from __future__ import annotations

from math import erf

import numpy as np

_verf = np.vectorize(erf, otypes=[np.float64])
_ONNX_DTYPES = {1: np.float64, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _layernorm(x, g, b, axis=-1, epsilon=1e-5, **_):
    mu = x.mean(axis, keepdims=True)
    var = ((x - mu) ** 2).mean(axis, keepdims=True)
    return (x - mu) / np.sqrt(var + epsilon) * g + b


def _softmax(x, axis=-1, **_):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _quantize(x, scale, zero, axis=1, **_):
    """QuantizeLinear: saturate(round_half_even(x / scale) + zero)."""
    if scale.ndim == 1:  # per-axis
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    info = np.iinfo(zero.dtype)
    y = np.rint(x / scale) + zero.astype(np.float64)
    return np.clip(y, info.min, info.max).astype(zero.dtype)


def _matmul_integer(a, b, a_zero=None, b_zero=None):
    a = a.astype(np.float64) - (0 if a_zero is None else a_zero.astype(np.float64).reshape(-1, 1))
    b = b.astype(np.float64) - (0 if b_zero is None else b_zero.astype(np.float64))
    # float64 products and sums of these small integers are exact (every partial sum is an
    # integer far below 2**53), and BLAS makes them fast
    out = np.matmul(a, b)
    if np.abs(out).max(initial=0) >= 2**31:
        raise OverflowError("MatMulInteger result exceeds int32")
    return out.astype(np.int32)


def _reduce(fn):
    def run(x, axes_in=None, axes=None, keepdims=1, **_):
        ax = axes if axes is not None else axes_in
        ax = tuple(int(a) for a in np.atleast_1d(ax)) if ax is not None else None
        return fn(x, axis=ax, keepdims=bool(keepdims))
    return run


OPS = {
    "Shape": lambda x: np.array(x.shape, dtype=np.int64),
    "Gather": lambda x, i, axis=0: np.take(x, i, axis=axis),
    "Unsqueeze": lambda x, axes: np.expand_dims(x, tuple(int(a) for a in axes)),
    "Range": lambda a, b, step: np.arange(a, b, step, dtype=np.int64),
    "Cast": lambda x, to: x.astype(_ONNX_DTYPES[to]),
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
    "Max": np.maximum, "Abs": np.abs,
    "Erf": _verf,
    "MatMul": np.matmul,
    "Reshape": lambda x, shape: x.reshape([x.shape[i] if s == 0 else s
                                           for i, s in enumerate(shape)]),
    "Transpose": lambda x, perm: np.transpose(x, perm),
    "Concat": lambda *xs, axis: np.concatenate(xs, axis=axis),
    "Slice": lambda x, starts, ends: x[int(starts[0]):int(ends[0])],
    "Softmax": _softmax,
    "LayerNormalization": _layernorm,
    "QuantizeLinear": _quantize,
    "MatMulInteger": _matmul_integer,
    "ReduceMax": _reduce(np.max),
    "ReduceSum": _reduce(np.sum),
    "ReduceL2": _reduce(lambda x, axis, keepdims: np.sqrt((x * x).sum(axis=axis,
                                                                     keepdims=keepdims))),
}


def run(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate `model` (an onnx.ModelProto) on `feeds`; returns the graph's outputs."""
    from onnx import numpy_helper
    env: dict[str, np.ndarray] = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        env[t.name] = a.astype(np.float64) if a.dtype == np.float32 else a
    env.update(feeds)
    for node in model.graph.node:
        fn = OPS.get(node.op_type)
        if fn is None:
            raise NotImplementedError(f"no emulation of ONNX operator {node.op_type}")
        args = [env[n] if n else None for n in node.input]
        attrs = _attrs(node)
        if node.op_type in ("ReduceSum",) and len(args) > 1:
            attrs["axes_in"] = args.pop()
        out = fn(*args, **attrs)
        env[node.output[0]] = out
    return [env[o.name] for o in model.graph.output]
