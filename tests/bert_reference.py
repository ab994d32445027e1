"""A plain NumPy BERT forward pass (float64) for checking the ONNX graph builder."""

from __future__ import annotations

import numpy as np
from math import erf, sqrt


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_verf = np.vectorize(erf)


def forward(W, cfg, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    W = {k: v.astype(np.float64) for k, v in W.items()}
    B, T = ids.shape
    h, heads = cfg.hidden, cfg.heads
    dh = h // heads
    x = (W["embeddings.word_embeddings.weight"][ids]
         + W["embeddings.position_embeddings.weight"][:T][None]
         + W["embeddings.token_type_embeddings.weight"][0])
    x = _ln(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], cfg.eps)
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."

        def lin(t, name):
            return t @ W[p + name + ".weight"].T + W[p + name + ".bias"]
        q = lin(x, "attention.self.query").reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
        k = lin(x, "attention.self.key").reshape(B, T, heads, dh).transpose(0, 2, 3, 1)
        v = lin(x, "attention.self.value").reshape(B, T, heads, dh).transpose(0, 2, 1, 3)
        s = q @ k / sqrt(dh) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(B, T, h)
        x = _ln(x + lin(ctx, "attention.output.dense"), W[p + "attention.output.LayerNorm.weight"],
                W[p + "attention.output.LayerNorm.bias"], cfg.eps)
        f = lin(x, "intermediate.dense")
        f = 0.5 * f * (1 + _verf(f / sqrt(2)))
        x = _ln(x + lin(f, "output.dense"), W[p + "output.LayerNorm.weight"],
                W[p + "output.LayerNorm.bias"], cfg.eps)
    m = mask[:, :, None].astype(np.float64)
    mean = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
