"""Build a BERT sentence-embedding ONNX graph from raw weights with numpy + onnx.helper.

No torch. The graph: token + position + type embeddings, LayerNorm, N encoder layers
(self-attention, GELU feed-forward, post-LayerNorm), masked mean pooling, L2
normalisation. Inputs `input_ids` and `attention_mask` (int64 [batch, tokens]); output
`sentence_embedding` (float32 [batch, hidden]).

Weight variants (every one keeps float32 activations except dyn8):
- "fp32": float32 weights (reference quality, ~90 MB for MiniLM-L6).
- "int8": int8 weights with one scale per output channel and group of 32 input rows,
  dequantised once when the session loads (constant folding) and multiplied in float32
  (with `session.disable_quant_qdq=1` nothing is fused into integer kernels): quality is
  that of the weights alone.
- "dyn8": 7-bit weights (-63..63) per output channel and activations quantised at run
  time with one scale per token (uint8 around 128, then MatMulInteger): integer matrix
  products, faster than float. Per-token scales keep a text's vector independent of the
  batch it is encoded in; LayerNorm outputs are first smoothed (see `_Graph.linear`).
  Why 7 bits: without VNNI, onnxruntime multiplies uint8 x int8 with `vpmaddubsw`, which
  adds pairs of products into a saturating int16. With weights within +-63 a pair is at
  most 2 * 255 * 63 = 32130 < 32767, so the integer products are exact on every x86 CPU
  (and on VNNI and ARM, which accumulate in int32): the same vector everywhere.
Embedding tables are stored int8 (one scale per row) in both int8 variants: rows are
gathered as int8 and scaled after the gather, so the table is never dequantised whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPSET = 17
VARIANTS = ("fp32", "int8", "dyn8")
GROUP = 32  # input rows sharing one int8 scale (per output channel) in the int8 variant


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    type_vocab: int = 2
    eps: float = 1e-12


def random_weights(cfg: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """A randomly initialised BERT with the same tensor names as a real checkpoint (for
    fast tests of the builder and the embedder)."""
    rng = np.random.default_rng(seed)
    h, f = cfg.hidden, cfg.intermediate

    def w(*shape, scale=0.05):
        return (rng.normal(size=shape) * scale).astype(np.float32)
    out = {
        "embeddings.word_embeddings.weight": w(cfg.vocab_size, h, scale=0.5),
        "embeddings.position_embeddings.weight": w(cfg.max_positions, h, scale=0.2),
        "embeddings.token_type_embeddings.weight": w(cfg.type_vocab, h, scale=0.2),
        "embeddings.LayerNorm.weight": 1 + w(h, scale=0.1),
        "embeddings.LayerNorm.bias": w(h),
    }
    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            out[p + name + ".weight"] = w(h, h, scale=0.1)
            out[p + name + ".bias"] = w(h)
        out[p + "intermediate.dense.weight"] = w(f, h, scale=0.1)
        out[p + "intermediate.dense.bias"] = w(f)
        out[p + "output.dense.weight"] = w(h, f, scale=0.1)
        out[p + "output.dense.bias"] = w(h)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            out[p + ln + ".weight"] = 1 + w(h, scale=0.1)
            out[p + ln + ".bias"] = w(h)
    return out


# dyn8's weight range: |uint8 activation| * |weight| summed over a pair must fit int16
# (see the module docstring): 2 * 255 * 63 = 32130 <= 32767.
DYN8_WEIGHT_LEVELS = 63


def _per_channel_int8(weight: np.ndarray, axis: int, levels: int = 127
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantisation to -levels..levels (int8) with one scale per slice along
    `axis`."""
    peak = np.abs(weight).max(axis=1 - axis)
    scale = np.where(peak > 0, peak / levels, 1.0).astype(np.float32)
    shape = (1, -1) if axis == 1 else (-1, 1)
    q = np.clip(np.rint(weight / scale.reshape(shape)), -levels, levels).astype(np.int8)
    return q, scale


class _Graph:
    def __init__(self, variant: str) -> None:
        from onnx import helper  # only to build a model (a core dependency)
        self.h = helper
        self.variant = variant
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, hint: str, array: np.ndarray) -> str:
        from onnx import numpy_helper
        name = self.name(hint)
        array = np.asarray(array)  # (ascontiguousarray would turn a 0-d scalar into 1-d)
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, n_out: int = 1, **attrs):
        outs = [self.name(hint) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    # --- building blocks ---------------------------------------------------------------

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str,
               act_peak: np.ndarray | None = None) -> str:
        """x [.., in] @ weight.T [in, out] + bias, in the graph's weight variant.

        `act_peak` (dyn8 only): an estimate of each input channel's largest |value|. A few
        channels of BERT's LayerNorm outputs are far larger than the rest and would take
        the whole per-tensor int8 range; dividing channel j by s_j = sqrt(peak_j / max|W_j|)
        and multiplying weight row j by s_j gives the same product with a flatter
        activation (SmoothQuant, alpha = 0.5)."""
        wt = np.ascontiguousarray(weight.T)  # [in, out]
        if self.variant == "dyn8" and act_peak is not None:
            w_peak = np.maximum(np.abs(wt).max(axis=1), 1e-8)
            smooth = np.sqrt(np.maximum(act_peak, 1e-8) / w_peak).astype(np.float32)
            x = self.op("Mul", [x, self.const(hint + "_sm", (1.0 / smooth).astype(np.float32))],
                        hint + "_smoothed")
            wt = wt * smooth[:, None]
        if self.variant == "fp32":
            y = self.op("MatMul", [x, self.const(hint + "_w", wt)], hint)
        elif self.variant == "int8":
            # one scale per output channel and group of GROUP input rows; the dequantising
            # chain has only constant inputs, so onnxruntime folds it once at load
            n_in, n_out = wt.shape
            g = GROUP if n_in % GROUP == 0 else n_in
            blocks = wt.reshape(n_in // g, g, n_out)
            peak = np.abs(blocks).max(axis=1, keepdims=True)
            scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
            q = np.clip(np.rint(blocks / scale), -127, 127).astype(np.int8).reshape(n_in, n_out)
            w = self.op("Cast", [self.const(hint + "_wq", q)], hint + "_wf", to=1)
            w = self.op("Reshape", [w, self.const(hint + "_gs", np.array(blocks.shape,
                                                                         np.int64))], hint)
            w = self.op("Mul", [w, self.const(hint + "_ws", scale)], hint + "_wd")
            w = self.op("Reshape", [w, self.const(hint + "_ws2", np.array(wt.shape, np.int64))],
                        hint + "_w")
            y = self.op("MatMul", [x, w], hint)
        else:  # dyn8: uint8 x 7-bit products, one activation scale per token
            q, scale = _per_channel_int8(wt, axis=1, levels=DYN8_WEIGHT_LEVELS)
            n_in, n_out = wt.shape
            shape = self.op("Shape", [x], hint + "_shape")
            rows = self.op("Reshape", [x, self.const(hint + "_2d", np.array([-1, n_in],
                                                                            np.int64))],
                           hint + "_rows")
            peak = self.op("ReduceMax", [self.op("Abs", [rows], hint + "_abs")], hint + "_pk",
                           axes=[1], keepdims=0)
            xs = self.op("Max", [self.op("Div", [peak, self.const(hint + "_127",
                                                                  np.array(127, np.float32))],
                                         hint + "_xs"),
                                 self.const(hint + "_tiny", np.array(1e-12, np.float32))],
                         hint + "_xs")
            # uint8 with zero point 128 (the fast u8 x s8 kernels of onnxruntime)
            zeros = self.op("Cast", [self.op("Add", [self.op("Mul", [xs, self.const(
                hint + "_z0", np.array(0, np.float32))], hint + "_zf"), self.const(
                hint + "_128", np.array(128, np.float32))], hint + "_zf")], hint + "_zi", to=2)
            xq = self.op("QuantizeLinear", [rows, xs, zeros], hint + "_xq", axis=0)
            acc = self.op("MatMulInteger", [xq, self.const(hint + "_wq", q),
                                            self.const(hint + "_az", np.array(128, np.uint8))],
                          hint + "_acc")
            accf = self.op("Cast", [acc], hint + "_accf", to=1)
            xs2 = self.op("Unsqueeze", [xs, self.const(hint + "_ax", np.array([1], np.int64))],
                          hint + "_xs2")
            y = self.op("Mul", [self.op("Mul", [accf, xs2], hint + "_y1"),
                                self.const(hint + "_ws", scale)], hint + "_y2")
            out_shape = self.op("Concat", [
                self.op("Slice", [shape, self.const(hint + "_s0", np.array([0], np.int64)),
                                  self.const(hint + "_s1", np.array([-1], np.int64))],
                        hint + "_lead"),
                self.const(hint + "_n", np.array([n_out], np.int64))], hint + "_oshape", axis=0)
            y = self.op("Reshape", [y, out_shape], hint)
        return self.op("Add", [y, self.const(hint + "_b", bias.astype(np.float32))], hint)

    def table(self, ids: str, table: np.ndarray, hint: str) -> str:
        """Rows of an embedding table by index."""
        if self.variant == "fp32":
            return self.op("Gather", [self.const(hint + "_t", table), ids], hint)
        q, scale = _per_channel_int8(table, axis=0)
        rows = self.op("Gather", [self.const(hint + "_tq", q), ids], hint + "_q")
        rowsf = self.op("Cast", [rows], hint + "_f", to=1)
        s = self.op("Gather", [self.const(hint + "_ts", scale), ids], hint + "_s")
        s = self.op("Unsqueeze", [s, self.const(hint + "_ax", np.array([-1], np.int64))],
                    hint + "_s")
        return self.op("Mul", [rowsf, s], hint)

    def layernorm(self, x: str, w: np.ndarray, b: np.ndarray, eps: float, hint: str) -> str:
        return self.op("LayerNormalization", [x, self.const(hint + "_g", w),
                                              self.const(hint + "_b", b)], hint, axis=-1,
                       epsilon=eps)


def build_bert(weights: dict[str, np.ndarray], cfg: BertConfig, variant: str = "int8",
               *, name: str = "edgevec-bert"):
    """Return an onnx.ModelProto computing L2-normalised mean-pooled embeddings."""
    from onnx import TensorProto, helper
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    g = _Graph(variant)
    W = weights
    h, heads = cfg.hidden, cfg.heads
    dh = h // heads

    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731 - tiny local helper
    shape = g.op("Shape", ["input_ids"], "shape")
    seq = g.op("Gather", [shape, g.const("one", np.array(1, np.int64))], "seq", axis=0)
    seq1 = g.op("Unsqueeze", [seq, g.const("ax0", i64(0))], "seq1")
    positions = g.op("Range", [g.const("zero", np.array(0, np.int64)), seq,
                               g.const("step", np.array(1, np.int64))], "positions")
    x = g.table("input_ids", W["embeddings.word_embeddings.weight"], "word")
    pos_table = W["embeddings.position_embeddings.weight"]
    pos = g.table(positions, pos_table, "pos")
    x = g.op("Add", [x, pos], "emb")
    x = g.op("Add", [x, g.const("type0", W["embeddings.token_type_embeddings.weight"][0])],
             "emb")
    x = g.layernorm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"],
                    cfg.eps, "emb_ln")

    maskf = g.op("Cast", ["attention_mask"], "maskf", to=1)
    # additive attention bias: 0 where attended, -10000 at padding (BERT's convention)
    bias = g.op("Mul", [g.op("Sub", [g.const("onef", np.array(1, np.float32)), maskf],
                             "inv"), g.const("neg", np.array(-10000.0, np.float32))], "bias")
    bias = g.op("Unsqueeze", [bias, g.const("ax12", i64(1, 2))], "bias4")
    split_shape = g.op("Concat", [g.const("m1", i64(0)), seq1,
                                  g.const("hd", i64(heads, dh))], "split_shape", axis=0)
    merge_shape = g.op("Concat", [g.const("m0", i64(0)), seq1, g.const("hh", i64(h))],
                       "merge_shape", axis=0)
    scale = g.const("scale", np.array(1.0 / np.sqrt(dh), np.float32))

    def ln_peak(prefix: str) -> np.ndarray:
        """Data-free estimate of a LayerNorm output's per-channel peak: the normalised
        values rarely exceed a few units, then gamma and beta scale and shift them."""
        return 4.0 * np.abs(W[prefix + ".weight"]) + np.abs(W[prefix + ".bias"])

    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."
        in_peak = ln_peak("embeddings.LayerNorm" if i == 0
                          else f"encoder.layer.{i - 1}.output.LayerNorm")

        def heads_of(name: str, t: str, perm) -> str:
            y = g.linear(t, W[p + name + ".weight"], W[p + name + ".bias"], f"l{i}_{name[-5:]}",
                         act_peak=in_peak)
            y = g.op("Reshape", [y, split_shape], f"l{i}_split")
            return g.op("Transpose", [y], f"l{i}_t", perm=perm)
        q = heads_of("attention.self.query", x, [0, 2, 1, 3])
        k = heads_of("attention.self.key", x, [0, 2, 3, 1])
        v = heads_of("attention.self.value", x, [0, 2, 1, 3])
        scores = g.op("Mul", [g.op("MatMul", [q, k], f"l{i}_qk"), scale], f"l{i}_scaled")
        probs = g.op("Softmax", [g.op("Add", [scores, bias], f"l{i}_masked")], f"l{i}_p",
                     axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v], f"l{i}_ctx")], f"l{i}_ctxt",
                   perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_shape], f"l{i}_merge")
        att = g.linear(ctx, W[p + "attention.output.dense.weight"],
                       W[p + "attention.output.dense.bias"], f"l{i}_ao")
        x = g.layernorm(g.op("Add", [x, att], f"l{i}_res1"),
                        W[p + "attention.output.LayerNorm.weight"],
                        W[p + "attention.output.LayerNorm.bias"], cfg.eps, f"l{i}_ln1")
        ff = g.linear(x, W[p + "intermediate.dense.weight"], W[p + "intermediate.dense.bias"],
                      f"l{i}_ff1", act_peak=ln_peak(p + "attention.output.LayerNorm"))
        # exact GELU: 0.5 x (1 + erf(x / sqrt 2))
        erf = g.op("Erf", [g.op("Mul", [ff, g.const("rsqrt2", np.array(1 / np.sqrt(2),
                                                                      np.float32))],
                                f"l{i}_div")], f"l{i}_erf")
        ff = g.op("Mul", [g.op("Mul", [ff, g.const("half", np.array(0.5, np.float32))],
                               f"l{i}_half"),
                          g.op("Add", [erf, g.const("onef2", np.array(1, np.float32))],
                               f"l{i}_1p")], f"l{i}_gelu")
        ff = g.linear(ff, W[p + "output.dense.weight"], W[p + "output.dense.bias"], f"l{i}_ff2")
        x = g.layernorm(g.op("Add", [x, ff], f"l{i}_res2"), W[p + "output.LayerNorm.weight"],
                        W[p + "output.LayerNorm.bias"], cfg.eps, f"l{i}_ln2")

    # masked mean pooling and L2 normalisation
    m3 = g.op("Unsqueeze", [maskf, g.const("ax2", i64(2))], "mask3")
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3], "masked"), g.const("ax1", i64(1))],
                  "summed", keepdims=0)
    count = g.op("ReduceSum", [maskf, g.const("ax1b", i64(1))], "count", keepdims=1)
    count = g.op("Max", [count, g.const("eps9", np.array(1e-9, np.float32))], "count")
    mean = g.op("Div", [summed, count], "mean")
    norm = g.op("ReduceL2", [mean], "norm", axes=[1], keepdims=1)  # opset 17: axes attr
    norm = g.op("Max", [norm, g.const("eps12", np.array(1e-12, np.float32))], "norm")
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"]))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
              for n in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT,
                                           ["batch", h])
    graph = helper.make_graph(g.nodes, name, inputs, [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgevec")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    return model


def config_from_hf(config: dict) -> BertConfig:
    """BertConfig from a Hugging Face config.json dict."""
    return BertConfig(vocab_size=config["vocab_size"], hidden=config["hidden_size"],
                      layers=config["num_hidden_layers"], heads=config["num_attention_heads"],
                      intermediate=config["intermediate_size"],
                      max_positions=config["max_position_embeddings"],
                      type_vocab=config.get("type_vocab_size", 2),
                      eps=config.get("layer_norm_eps", 1e-12))


SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit on the JSON header
_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """Read a .safetensors file with numpy alone (8-byte header length, JSON, raw data).

    Nothing in the header is trusted: its size is capped, every tensor's dtype, shape and
    offsets are checked against the data (in bounds, the byte count of dtype x shape, no
    overlaps) before any array is made. A bad file raises ModelError naming the tensor.
    BF16 tensors are widened to float32."""
    import json
    import math
    from ..errors import ModelError

    def bad(why: str) -> ModelError:
        return ModelError(f"{path}: not a valid safetensors file: {why}; reinstall the "
                          "weights package or pass another weights directory")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the weights ({exc.strerror})") from None
    if len(raw) < 8:
        raise bad(f"{len(raw)} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(raw[:8], "little")
    if n > min(SAFETENSORS_MAX_HEADER, len(raw) - 8):
        raise bad(f"header length {n} exceeds the file ({len(raw)} bytes) or the "
                  f"{SAFETENSORS_MAX_HEADER}-byte limit")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    data = memoryview(raw)[8 + n:]
    spans, out = [], {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor {key!r} is described by {type(info).__name__}, not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _SAFETENSORS_DTYPES:
            raise bad(f"tensor {key!r} has dtype {dtype!r}; supported: "
                      f"{', '.join(_SAFETENSORS_DTYPES)}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise bad(f"tensor {key!r} has shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= len(data)):
            raise bad(f"tensor {key!r} has data_offsets {offsets!r} outside [0, {len(data)}]")
        item = np.dtype(_SAFETENSORS_DTYPES[dtype])
        if offsets[1] - offsets[0] != math.prod(shape) * item.itemsize:
            raise bad(f"tensor {key!r}: {offsets[1] - offsets[0]} bytes for {dtype} {shape}")
        spans.append((offsets[0], offsets[1], key))
        a = np.frombuffer(data[offsets[0]:offsets[1]], dtype=item).reshape(shape)
        out[key] = ((a.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16"
                    else a.astype(item.newbyteorder("="), copy=True))
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise bad(f"tensors {first!r} and {second!r} overlap")
    return out
