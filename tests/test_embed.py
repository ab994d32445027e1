"""The ONNX embedder: graph builder against a NumPy BERT, bucketing, bad input, model files,
and the real all-MiniLM-L6-v2 against sentence-transformers reference embeddings."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import edgevec
from edgevec.embed import Embedder, ModelConfig, ModelError
from edgevec.embed.bert_onnx import BertConfig, build_bert, random_weights

import bert_reference

TINY = BertConfig(vocab_size=64, hidden=32, layers=2, heads=4, intermediate=64,
                  max_positions=64)
WORDS = ["the", "a", "search", "file", "vector", "memory", "fast", "slow", "laptop", "query",
         "index", "text", "model", "offline", "device", "##s", "##ing", "on", "in", "of"]


def tiny_tokenizer() -> bytes:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok.to_str().encode()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    model = build_bert(random_weights(TINY, seed=3), TINY, "fp32").SerializeToString()
    (d / "model.onnx").write_bytes(model)
    (d / "tokenizer.json").write_bytes(tiny_tokenizer())
    cfg = ModelConfig(name="tiny", dim=32, max_tokens=48, pooling="none")
    (d / "edgevec-model.json").write_text(json.dumps(cfg.to_json()))
    return d


@pytest.mark.parametrize("variant, floor", [("fp32", 0.99999), ("int8", 0.999),
                                            ("dyn8", 0.99)])
def test_graph_matches_numpy_bert(variant, floor):
    import onnxruntime as ort
    w = random_weights(TINY, seed=1)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, TINY.vocab_size, size=(4, 11))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    want = bert_reference.forward(w, TINY, ids, mask)
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    sess = ort.InferenceSession(build_bert(w, TINY, variant).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    assert got.shape == (4, 32)
    assert np.sum(got * want, axis=1).min() >= floor


def test_dyn8_vectors_do_not_depend_on_the_batch(models_dir):
    """Regression: with one activation scale per batch, a text's dyn8 vector changed with
    its batch neighbours (cosine 0.95 alone vs in a batch); scales are now per token."""
    from edgevec.embed import build_model
    build_model("minilm-l6", "dyn8", allow_download=False)
    emb = Embedder.load("minilm-l6", variant="dyn8")
    texts, _ = _reference()
    together = emb.encode(texts, batch_size=16)
    alone = np.concatenate([emb.encode([t]) for t in texts])
    assert np.sum(together * alone, axis=1).min() > 0.9999


def test_order_is_kept_and_batching_does_not_change_vectors(tiny_dir):
    emb = Embedder.load(str(tiny_dir))
    texts = ["fast vector search on a laptop " * k for k in (5, 1, 3)] + ["the", "", "query"]
    together = emb.encode(texts, batch_size=2)
    alone = np.concatenate([emb.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-6)
    assert together.dtype == np.float32 and together.shape == (6, 32)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    shuffled = emb.encode(texts[::-1], batch_size=4)[::-1]
    np.testing.assert_allclose(shuffled, together, atol=2e-6)


def test_empty_and_odd_texts_give_unit_vectors(tiny_dir):
    emb = Embedder.load(str(tiny_dir))
    out = emb.encode(["", " ", "unknownword", "search " * 500])  # last one is truncated
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert emb.encode([]).shape == (0, 32)
    assert emb.encode("query").shape == (1, 32)


def test_non_strings_are_rejected_by_index(tiny_dir):
    """(An InvalidInput since it is the only error tree that leaves edgevec; it was a
    TypeError.)"""
    emb = Embedder.load(str(tiny_dir))
    with pytest.raises(edgevec.InvalidInput, match=r"texts\[2\] is int"):
        emb.encode(["a", "b", 3])
    with pytest.raises(edgevec.InvalidInput, match=r"texts\[0\] is NoneType"):
        emb.encode([None])
    with pytest.raises(edgevec.InvalidInput, match="batch_size"):
        emb.encode(["a"], batch_size=0)


def test_missing_or_damaged_model_files(tiny_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    cfg = json.loads((d / "edgevec-model.json").read_text())
    cfg["sha256"] = {"model.onnx": "0" * 64}
    (d / "edgevec-model.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="sha256.*Rebuild"):
        Embedder.load(str(d))
    (d / "edgevec-model.json").write_text(json.dumps(dict(cfg, sha256={})))
    (d / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="cannot be loaded.*rebuild"):
        Embedder.load(str(d))
    os.remove(d / "model.onnx")
    with pytest.raises(ModelError, match="model.onnx"):
        Embedder.load(str(d))
    assert issubclass(ModelError, edgevec.EdgevecError)


def test_unbuilt_model_name_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="edgevec model build minilm-l6"):
        Embedder.load("minilm-l6")
    with pytest.raises(ModelError, match="unknown model"):
        Embedder.load("no-such-model")


def test_dimension_mismatch_with_an_index(tiny_dir):
    emb = Embedder.load(str(tiny_dir))
    with pytest.raises(edgevec.ModelMismatch, match="32-dimensional.*384"):
        emb.check_dim(384, "docs.edgevec")


def test_foreign_model_directory_with_cls_pooling(tmp_path):
    """Any ONNX model that outputs token embeddings, with a sentence-transformers pooling
    config, works: here CLS pooling over a graph cut before its own pooling."""
    import onnx
    w = random_weights(TINY, seed=4)
    model = build_bert(w, TINY, "fp32")
    # expose the last LayerNorm output (token embeddings) as the only output
    last = [n for n in model.graph.node if n.op_type == "LayerNormalization"][-1].output[0]
    del model.graph.output[:]
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        last, onnx.TensorProto.FLOAT, ["batch", "tokens", 32]))
    d = tmp_path / "foreign"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "model.onnx").write_bytes(model.SerializeToString())
    (d / "tokenizer.json").write_bytes(tiny_tokenizer())
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    emb = Embedder.load(str(d))
    assert emb.dim == 32 and emb.config.pooling == "cls"
    out = emb.encode(["fast search", "the laptop"])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


def test_from_bytes_round_trip(tiny_dir):
    model = (tiny_dir / "model.onnx").read_bytes()
    tok = (tiny_dir / "tokenizer.json").read_bytes()
    cfg = json.loads((tiny_dir / "edgevec-model.json").read_text())
    a = Embedder.from_bytes(model, tok, cfg).encode(["vector search"])
    b = Embedder.load(str(tiny_dir)).encode(["vector search"])
    np.testing.assert_array_equal(a, b)


# --- the real model ------------------------------------------------------------------------


def _reference():
    ref = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "minilm_reference.npz"))
    return json.loads(str(ref["texts"])), ref["embeddings"]


@pytest.mark.parametrize("variant, min_floor, mean_floor", [
    ("fp32", 0.9999, 0.9999),
    ("int8", 0.999, 0.9995),
])
def test_minilm_matches_sentence_transformers(models_dir, variant, min_floor, mean_floor):
    """Float-compute variants: onnxruntime's output is the scheme's (rounding aside)."""
    from edgevec.embed import build_model
    build_model("minilm-l6", variant, allow_download=False)
    emb = Embedder.load("minilm-l6", variant=variant)
    texts, want = _reference()
    got = emb.encode(texts, batch_size=16)
    cos = np.sum(got * want, axis=1)
    assert cos.min() >= min_floor, (texts[int(cos.argmin())], float(cos.min()))
    assert cos.mean() >= mean_floor


@pytest.fixture(scope="module")
def dyn8_emulated(models_dir):
    """dyn8's vectors of the reference texts from the exact, ISA-independent emulation of
    its ONNX graph (integer products in exact integers), and the onnxruntime embedder."""
    import onnx
    import onnx_emulator
    from edgevec.embed import build_model
    build_model("minilm-l6", "dyn8", allow_download=False)
    emb = Embedder.load("minilm-l6", variant="dyn8")
    model = onnx.load_from_string(emb.files()["model.onnx"])
    texts, _ = _reference()
    out = []
    for e in emb._tok.encode_batch(texts):
        feed = {"input_ids": np.array([e.ids], np.int64),
                "attention_mask": np.ones((1, len(e.ids)), np.int64)}
        out.append(onnx_emulator.run(model, feed)[0][0])
    return emb, np.array(out)


def test_dyn8_scheme_quality_in_exact_emulation(dyn8_emulated):
    """(a) The quality of dyn8's arithmetic itself, the same on every CPU: measured min
    0.98884 / mean 0.99598 (7-bit weights); the floors keep a margin of about 0.004 / 0.001
    for BLAS rounding in the emulation's float parts."""
    _, got = dyn8_emulated
    texts, want = _reference()
    cos = np.sum(got * want, axis=1)
    assert cos.min() >= 0.985, (texts[int(cos.argmin())], float(cos.min()))
    assert cos.mean() >= 0.995, float(cos.mean())


def test_dyn8_onnxruntime_matches_the_emulation(dyn8_emulated):
    """(b) onnxruntime's dyn8 vectors on this CPU against the exact emulation. Integer
    products must be exact; float32 rounding can flip a few activations' int8 rounding,
    which moves vectors by ~1e-3 at worst (measured min 0.9984 on Zen 3). A saturating
    GEMM (8-bit weights on AVX2 without VNNI) gave 0.988."""
    from edgevec.cpu import summary
    emb, want = dyn8_emulated
    texts, _ = _reference()
    got = emb.encode(texts, batch_size=16)
    cos = np.sum(got * want, axis=1)
    where = summary()
    assert cos.min() >= 0.997, (f"on {where}", texts[int(cos.argmin())], float(cos.min()))
    assert cos.mean() >= 0.9995, (f"on {where}", float(cos.mean()))


def test_integer_products_are_exact_within_the_dyn8_weight_range():
    """(c) The worst case for a saturating int16 pair sum (uint8 activations at 255 against
    weights at +-63, and +-64, the largest safe range) must come out of onnxruntime exactly,
    bit for bit, on every CPU; the probe's hand-written graph is a valid ONNX model."""
    import onnx
    from edgevec.cpu import summary
    from edgevec.embed.bert_onnx import DYN8_WEIGHT_LEVELS
    from edgevec.embed.exactness import integer_products_exact, probe_inputs, probe_model
    onnx.checker.check_model(onnx.load_from_string(probe_model(probe_inputs(63)[1])),
                             full_check=True)
    assert DYN8_WEIGHT_LEVELS * 255 * 2 <= 32767
    for levels in (DYN8_WEIGHT_LEVELS, 64):
        assert integer_products_exact(levels), f"not exact at +-{levels} on {summary()}"


def test_an_old_8bit_dyn8_model_is_refused_where_it_would_saturate(tiny_dir, monkeypatch):
    """dyn8 models built before 7-bit weights (no weight_levels in their config; for example
    one stored in an older index file) give other vectors on a CPU without VNNI: refuse
    them there with a clear error, accept them where products are exact."""
    from edgevec.embed import exactness
    model = (tiny_dir / "model.onnx").read_bytes()
    tok = (tiny_dir / "tokenizer.json").read_bytes()
    # max_tokens within the tiny model's 64-row position table (the gate checks it)
    old = ModelConfig(name="tiny", dim=32, max_tokens=48, pooling="none", variant="dyn8")
    monkeypatch.setattr(exactness, "integer_products_exact", lambda levels: levels <= 64)
    with pytest.raises(ModelError, match=r"up to \+-127.*saturation.*--variant dyn8 --force"):
        Embedder.from_bytes(model, tok, old)
    new = ModelConfig(name="tiny", dim=32, max_tokens=48, pooling="none", variant="dyn8",
                      weight_levels=63)
    assert Embedder.from_bytes(model, tok, new).dim == 32
    assert ModelConfig.from_json(new.to_json()).weight_levels == 63
    monkeypatch.setattr(exactness, "integer_products_exact", lambda levels: True)
    assert Embedder.from_bytes(model, tok, old).dim == 32  # a VNNI machine


def test_minilm_default_model_facts(minilm):
    assert minilm.dim == 384 and minilm.config.max_tokens == 256
    path = os.path.join(os.environ["EDGEVEC_MODELS_DIR"], "minilm-l6-int8", "model.onnx")
    assert os.path.getsize(path) <= 25_000_000
    tok = json.load(open(os.path.join(os.path.dirname(path), "tokenizer.json")))
    assert tok["truncation"]["max_length"] == 256
    assert tok["padding"]["strategy"] == "BatchLongest"
    a, b, c = minilm.encode(["How do I read a CSV file?", "parsing comma separated values",
                             "chocolate chip cookie recipe"])
    assert a @ b > a @ c + 0.2  # it actually means something


def test_a_stale_build_is_refused_and_rebuilt(models_dir, tmp_path, monkeypatch):
    """A cache built by an older recipe must not be used silently."""
    from edgevec.embed import build_model
    src = build_model("minilm-l6", "int8", allow_download=False)
    root = tmp_path / "cache"
    shutil.copytree(src, root / "minilm-l6-int8")
    cfg_path = root / "minilm-l6-int8" / "edgevec-model.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["sha256"]["model.onnx"] = "f" * 64
    cfg_path.write_text(json.dumps(cfg))
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(root))
    with pytest.raises(ModelError, match="--force"):
        Embedder.load("minilm-l6")
    build_model("minilm-l6", "int8", allow_download=False)  # rebuilds
    assert Embedder.load("minilm-l6").dim == 384


CONCURRENT_BUILD = """
import sys, time
from edgevec.embed.models import build_model
t = time.perf_counter()
print(build_model("minilm-l6", "int8", allow_download=False), time.perf_counter() - t)
"""


def test_two_processes_building_at_once_build_once(models_dir, tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, EDGEVEC_MODELS_DIR=str(tmp_path / "shared"))
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_BUILD], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    paths = {o[0].split()[0] for o in outs}
    assert len(paths) == 1
    leftovers = [n for n in os.listdir(tmp_path / "shared") if n.startswith(".build-")]
    assert not leftovers
    emb = Embedder.load(paths.pop())
    assert emb.dim == 384


# --- the optimised-graph cache (embed/session.py) -------------------------------------------


def _tiny_parts(tiny_dir):
    from edgevec.embed.embedder import sha256_bytes
    model = (tiny_dir / "model.onnx").read_bytes()
    cfg = ModelConfig.from_json(json.loads((tiny_dir / "edgevec-model.json").read_text()))
    return model, (tiny_dir / "tokenizer.json").read_bytes(), cfg, sha256_bytes(model)


def test_optimised_graph_is_cached_and_then_the_model_is_not_even_read(tiny_dir, tmp_path,
                                                                       monkeypatch):
    """A new process used to spend 0.33 s of 0.4 s optimising the stored model's graph;
    the optimised graph is cached per model and onnxruntime version, and a later load with
    the model's digest needs neither the model's bytes nor the optimisation."""
    from edgevec.embed.session import GRAPH_FILE, optimized_dir
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path / "cache"))
    model, tok, cfg, digest = _tiny_parts(tiny_dir)
    first = Embedder(model, tok, cfg).encode(["fast vector search", "the laptop"])
    assert os.path.exists(os.path.join(optimized_dir(digest), GRAPH_FILE))

    def unread():
        raise AssertionError("the model's bytes were read despite the cache")
    again = Embedder(unread, tok, cfg, model_sha256=digest)
    np.testing.assert_array_equal(again.encode(["fast vector search", "the laptop"]), first)
    assert not [n for n in os.listdir(tmp_path / "cache" / "optimized") if n.startswith(".tmp")]


def test_a_damaged_or_unwritable_cache_is_never_needed(tiny_dir, tmp_path, monkeypatch):
    from edgevec.embed.session import GRAPH_FILE, optimized_dir
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path / "cache"))
    model, tok, cfg, digest = _tiny_parts(tiny_dir)
    want = Embedder(model, tok, cfg).encode(["query"])
    with open(os.path.join(optimized_dir(digest), GRAPH_FILE), "wb") as f:
        f.write(b"damaged")
    np.testing.assert_array_equal(Embedder(model, tok, cfg).encode(["query"]), want)
    Embedder(lambda: 1 / 0, tok, cfg, model_sha256=digest)  # rebuilt: a hit again
    with open(os.path.join(optimized_dir(digest), GRAPH_FILE), "wb") as f:
        f.write(b"damaged")  # again, and this time the model is read lazily (an index)
    np.testing.assert_array_equal(
        Embedder(lambda: model, tok, cfg, model_sha256=digest).encode(["query"]), want)
    Embedder(lambda: 1 / 0, tok, cfg, model_sha256=digest)  # the lazy path rebuilt it too
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path / "file"))
    np.testing.assert_array_equal(Embedder(model, tok, cfg).encode(["query"]), want)


def test_a_stored_model_that_does_not_match_its_digest_is_refused(tiny_dir, tmp_path,
                                                                  monkeypatch):
    """On a cache miss the stored model is read and must have the digest it is known by."""
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path / "empty"))
    model, tok, cfg, digest = _tiny_parts(tiny_dir)
    with pytest.raises(ModelError, match="does not match its recorded sha256.*damaged"):
        Embedder(lambda: model[:-1], tok, cfg, model_sha256=digest)
    assert Embedder(lambda: model, tok, cfg, model_sha256=digest).dim == 32


def test_a_query_process_skips_prepacking_until_it_embeds_more(tiny_dir, monkeypatch):
    """Repacking the weights costs ~70 ms at load and saves ~6 ms a run: an embedder opens
    its session unpacked and switches once, after PREPACK_AFTER_TEXTS texts; the vectors
    agree to float rounding."""
    from edgevec.embed import embedder as embedder_mod
    real, opened = embedder_mod.create_session, []

    def recording(*args, **kwargs):
        opened.append(kwargs["prepack"])
        return real(*args, **kwargs)
    monkeypatch.setattr(embedder_mod, "create_session", recording)
    emb = Embedder.load(str(tiny_dir))
    first = emb.encode(["fast vector search"])
    assert opened == [False]
    emb.encode(["the laptop"] * embedder_mod.PREPACK_AFTER_TEXTS)
    assert opened == [False, True]
    np.testing.assert_allclose(emb.encode(["fast vector search"]), first, atol=1e-6)
    emb.encode(["query"] * 100)
    assert opened == [False, True]


def _safetensors(tensors: dict, header_patch=None) -> bytes:
    """A safetensors file of float32 tensors, its header optionally altered."""
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    if header_patch:
        header_patch(header)
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def test_safetensors_reader_checks_every_header_field(tmp_path):
    """Regression: read_safetensors trusted its header (size, offsets, shapes), so a bad
    file gave struct.error, KeyError, ValueError or a huge allocation; each is now one
    ModelError naming the problem, as the safetensors format specifies."""
    from edgevec.embed.bert_onnx import read_safetensors
    good = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.float32)}
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors(good))
    got = read_safetensors(str(path))
    np.testing.assert_array_equal(got["a"], good["a"])
    np.testing.assert_array_equal(got["b"], good["b"])

    def set_(name, field, value):
        return lambda h: h[name].__setitem__(field, value)
    cases = [
        (b"\x01\x02", "shorter than the 8-byte"),
        ((10**12).to_bytes(8, "little") + b"{}", "header length"),
        ((5).to_bytes(8, "little") + b"nope!", "not JSON"),
        ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
        (_safetensors(good, set_("a", "dtype", "Q7")), "dtype 'Q7'"),
        (_safetensors(good, set_("a", "shape", [2, -3])), "shape"),
        (_safetensors(good, set_("b", "data_offsets", [24, 9999])), "outside"),
        (_safetensors(good, set_("a", "shape", [3, 3])), "bytes for F32"),
        (_safetensors(good, set_("b", "data_offsets", [8, 24])), "overlap|bytes for"),
        (_safetensors(good, lambda h: h.__setitem__("c", 7)), "not an object"),
        (_safetensors(good, set_("b", "data_offsets", [20, 36])), "overlap"),
    ]
    for raw, words in cases:
        path.write_bytes(raw)
        with pytest.raises(ModelError, match=words):
            read_safetensors(str(path))
    with pytest.raises(ModelError, match="cannot read"):
        read_safetensors(str(tmp_path / "missing.safetensors"))


def test_bad_weights_directories_raise_model_errors(tmp_path, monkeypatch):
    """Regression: a weights folder with a broken config.json or weights file leaked
    KeyError / struct.error out of `edgevec model build`."""
    from edgevec.embed import build_model
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path / "cache"))
    w = tmp_path / "weights"
    w.mkdir()
    with pytest.raises(ModelError, match="no model.safetensors here"):
        build_model("minilm-l6", "int8", weights_dir=str(w))
    (w / "model.safetensors").write_bytes(b"\x00" * 4)
    (w / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="not a usable BERT config"):
        build_model("minilm-l6", "int8", weights_dir=str(w))
    (w / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a usable BERT config"):
        build_model("minilm-l6", "int8", weights_dir=str(w))
    (w / "config.json").write_text(json.dumps({
        "vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1,
        "intermediate_size": 8, "max_position_embeddings": 8}))
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        build_model("minilm-l6", "int8", weights_dir=str(w))


def test_building_without_onnx_says_what_to_install(tmp_path, monkeypatch):
    """Regression: after a plain `pip install edgevec`, `edgevec model build` died with
    ModuleNotFoundError: No module named 'onnx'. onnx is a core dependency now; an
    environment that lacks it anyway gets one line naming the package."""
    import sys
    from edgevec import cli
    from edgevec.embed import build_model
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    with pytest.raises(ModelError, match=r"pip install 'onnx>=1.14'"):
        build_model("minilm-l6", "int8", allow_download=False)
    assert cli.main(["model", "build", "minilm-l6"]) == 1


def test_an_unusable_model_cache_is_one_clear_error(tmp_path, monkeypatch):
    """Regression: `edgevec model build` with EDGEVEC_MODELS_DIR below a regular file died
    with NotADirectoryError from os.makedirs."""
    from edgevec import cli
    from edgevec.embed import build_model
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(edgevec.EdgevecError, match="a-file.*EDGEVEC_MODELS_DIR"):
        build_model("minilm-l6", "int8", allow_download=False)
    assert cli.main(["model", "build", "minilm-l6"]) == 1


def test_same_weights_with_another_tokenizer_are_another_model(tiny_dir, tmp_path):
    """Regression: identity was the sha256 of model.onnx alone, so the same weights with a
    different tokenizer.json passed as the index's model. Files written before the
    fingerprint (no `fingerprint` in their header) are still compared by sha256."""
    a = Embedder.load(str(tiny_dir))
    model, tok, cfg, _ = _tiny_parts(tiny_dir)
    doc = json.loads(tok)
    doc["normalizer"]["lowercase"] = False  # "Fast" and "fast" now tokenize differently
    b = Embedder.from_bytes(model, json.dumps(doc).encode(), cfg)
    assert a.identity["sha256"] == b.identity["sha256"]
    assert a.identity["fingerprint"] != b.identity["fingerprint"]
    with edgevec.Index.create(tmp_path / "t.edgevec", model=a) as idx:
        idx.add(texts=["fast vector search", "the laptop"])
        v = b.encode(["Fast laptop"])
        with pytest.raises(edgevec.ModelMismatch, match="fingerprint"):
            idx.add(v, embedder=b)
        with pytest.raises(edgevec.ModelMismatch, match="fingerprint"):
            idx.search(v[0], embedder=b)
        assert len(idx.search(a.encode(["laptop"])[0], k=1, embedder=Embedder.load(
            str(tiny_dir)))) == 1
    assert b.same_model({"sha256": a.identity["sha256"]})  # an older file: model digest
