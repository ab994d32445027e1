"""An index file is untrusted input, and so is the text model it carries (issue 23).

Every case here was an attack that worked: a stored ONNX graph whose initializer's data
lived in `secret.env` beside the process (onnxruntime read it, and the bytes came back in
every query vector), a Loop that hung search, a tokenizer regex that made a query raise
pyo3's PanicException (a BaseException), config values that escaped as OverflowError,
RecursionError or MemoryError. The corpus is built here with the onnx helper API (no
hostile file is checked in); each case is fed as a model directory and as the model
stored in an index, and must raise exactly the EdgevecError subclass named, read no file
outside the index and leave nothing in the model cache.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import edgevec
from edgevec.embed import stored
from edgevec.embed.gate import check_model
from edgevec.errors import ModelError, ModelMismatch, UnsafeModel
from edgevec.fileio import sha256_bytes

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

DIM, VOCAB = 8, 16
CANARY = b"CANARY-SECRET-0123456789abcdef!!"  # 32 bytes: 8 float32 values


def tokenizer_json(pre_tokenizer: dict | None = None, normalizer: dict | None = None,
                   vocab: int = VOCAB) -> bytes:
    from tokenizers import Tokenizer, models, pre_tokenizers
    words = {f"w{i}": i for i in range(vocab)}
    words["[UNK]"] = 0
    tok = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tree = json.loads(tok.to_str())
    if pre_tokenizer is not None:
        tree["pre_tokenizer"] = pre_tokenizer
    if normalizer is not None:
        tree["normalizer"] = normalizer
    return json.dumps(tree).encode()


def config(**changes) -> dict:
    return dict({"name": "hostile", "dim": DIM, "max_tokens": 32, "pooling": "none",
                 "normalize": True}, **changes)


def table(name: str = "table", rows: int = VOCAB) -> TensorProto:
    values = np.random.default_rng(0).normal(size=(rows, DIM)).astype(np.float32)
    return helper.make_tensor(name, TensorProto.FLOAT, values.shape, values.tobytes(),
                              raw=True)


def graph_model(nodes, initializers, *, extra_inputs=(), functions=(), opset=17,
                outputs=None) -> bytes:
    """input_ids [batch, tokens] -> ... -> sentence_embedding [batch, DIM]."""
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                            ["batch", "tokens"]), *extra_inputs]
    outs = outputs or [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT,
                                                     ["batch", DIM])]
    graph = helper.make_graph(nodes, "g", inputs, outs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              functions=list(functions))
    model.ir_version = 8
    return model.SerializeToString()


def pooled(table_name: str = "table", *, extra=()) -> list:
    """Gather rows of the table by token id, mean over tokens."""
    return [helper.make_node("Gather", [table_name, "input_ids"], ["emb"]),
            *extra,
            helper.make_node("ReduceMean", ["emb"], ["sentence_embedding"], axes=[1],
                             keepdims=0)]


def benign() -> bytes:
    return graph_model(pooled(), [table()])


def external_table(location: str = "secret.env") -> TensorProto:
    t = TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[1, DIM])
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "32")):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def loop_model(trips: int = 2**62) -> bytes:
    """A Loop of `trips` iterations around the pooled embedding (the body passes it on)."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["acc_in"], ["acc_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, None)])
    count = helper.make_tensor("trips", TensorProto.INT64, [], [trips])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    nodes = pooled()[:1] + [
        helper.make_node("ReduceMean", ["emb"], ["mean"], axes=[1], keepdims=0),
        helper.make_node("Loop", ["trips", "cond", "mean"], ["sentence_embedding"],
                         body=body)]
    return graph_model(nodes, [table(), count, cond])


def constant_of_shape(shape: list[int]) -> bytes:
    big = helper.make_tensor("big_shape", TensorProto.INT64, [len(shape)], shape)
    nodes = pooled() + [helper.make_node("ConstantOfShape", ["big_shape"], ["junk"])]
    return graph_model(nodes, [table(), big])


def expand_computed() -> bytes:
    """Expand to Shape(input_ids) * 2**40: a size only known at run time."""
    factor = helper.make_tensor("factor", TensorProto.INT64, [2], [2**40, 1])
    nodes = [helper.make_node("Shape", ["input_ids"], ["s"]),
             helper.make_node("Mul", ["s", "factor"], ["huge"]),
             helper.make_node("Cast", ["input_ids"], ["idf"], to=TensorProto.FLOAT),
             helper.make_node("Expand", ["idf", "huge"], ["wide"]),
             helper.make_node("ReduceSum", ["wide"], ["total"], keepdims=1),
             helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
             helper.make_node("ReduceMean", ["emb"], ["m"], axes=[1], keepdims=0),
             helper.make_node("Mul", ["m", "total"], ["sentence_embedding"])]
    return graph_model(nodes, [table(), factor])


def function_model() -> bytes:
    fn = helper.make_function("local.fns", "Twice", ["x"], ["y"],
                              [helper.make_node("Add", ["x", "x"], ["y"])],
                              [helper.make_opsetid("", 17)])
    nodes = pooled()[:1] + [
        helper.make_node("ReduceMean", ["emb"], ["m"], axes=[1], keepdims=0),
        helper.make_node("Twice", ["m"], ["sentence_embedding"], domain="local.fns")]
    return graph_model(nodes, [table()], functions=[fn])


def with_node(node) -> bytes:
    return graph_model(pooled(extra=[node]), [table()])


MODELS = {
    "external data in an initializer": (lambda: graph_model(pooled(), [external_table()]),
                                        UnsafeModel, "external data"),
    "external data in a Constant": (lambda: graph_model(
        [helper.make_node("Constant", [], ["table"], value=external_table())] + pooled(), []),
        UnsafeModel, "external data"),
    "external data in a sparse initializer": (lambda: _sparse_external(), UnsafeModel,
                                              "external data"),
    "absolute external path": (lambda: graph_model(pooled(), [external_table("/etc/passwd")]),
                               UnsafeModel, "external data"),
    "Loop with 2**62 trips": (loop_model, UnsafeModel, "control flow"),
    "model-local function": (function_model, UnsafeModel, "function"),
    "op from a foreign domain": (lambda: with_node(helper.make_node(
        "Evil", ["emb"], ["x"], domain="evil.ops")), UnsafeModel, "domain"),
    "EPContext (reads a file)": (lambda: with_node(helper.make_node(
        "EPContext", ["emb"], ["x"], domain="com.microsoft", ep_cache_context="secret.env",
        embed_mode=0)), UnsafeModel, "allow-list"),
    "op off the allow-list": (lambda: with_node(helper.make_node(
        "RandomNormal", [], ["x"], shape=[2, 2])), UnsafeModel, "allow-list"),
    "ConstantOfShape 2**20 x 2**20": (lambda: constant_of_shape([2**20, 2**20]),
                                      UnsafeModel, "over the cap"),
    "ConstantOfShape negative": (lambda: constant_of_shape([-5]), UnsafeModel, "negative"),
    "huge declared output": (lambda: graph_model(pooled(), [table()], outputs=[
        helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT,
                                      [2**40, DIM])]), UnsafeModel, "over the cap"),
    "not protobuf": (lambda: b"\xff" * 64, UnsafeModel, "well-formed"),
    "truncated protobuf": (lambda: benign()[:-7], UnsafeModel, "well-formed"),
    "Expand to a run-time size of 2**40 rows": (expand_computed, ModelError, "failed on"),
}


def _sparse_external() -> bytes:
    values = external_table()
    values.name = "vals"
    del values.dims[:]
    values.dims.append(2)
    indices = helper.make_tensor("idx", TensorProto.INT64, [2], [0, 1])
    sparse = helper.make_sparse_tensor(values, indices, [VOCAB * DIM])
    model = onnx.load_from_string(benign())
    model.graph.sparse_initializer.append(sparse)
    return model.SerializeToString()


TOKENIZERS = {
    "catastrophic Split regex": (lambda: tokenizer_json(pre_tokenizer={
        "type": "Split", "pattern": {"Regex": r"(.+)+\d$"}, "behavior": "Isolated",
        "invert": False}), UnsafeModel, "backtrack"),
    "catastrophic Replace regex": (lambda: tokenizer_json(normalizer={
        "type": "Replace", "pattern": {"Regex": r"(a|aa)*b"}, "content": "x"}),
        UnsafeModel, "backtrack"),
    "backreference": (lambda: tokenizer_json(pre_tokenizer={
        "type": "Split", "pattern": {"Regex": r"(\w)\1"}, "behavior": "Isolated",
        "invert": False}), UnsafeModel, "backreference"),
    # unreadable files: the library's parser refuses them (it bounds nesting itself)
    "nested 100,000 deep": (lambda: b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                            ModelError, "cannot be read"),
    "not JSON": (lambda: b"\x00\x01", ModelError, "cannot be read"),
    "not UTF-8": (lambda: b'{"x": "\xff"}', ModelError, "cannot be read"),
}

CONFIGS = {
    "max_tokens 100000": (config(max_tokens=100_000), UnsafeModel, "max_tokens"),
    "max_tokens 2**70": (config(max_tokens=2**70), UnsafeModel, "max_tokens"),
    "max_tokens -1": (config(max_tokens=-1), UnsafeModel, "max_tokens"),
    "max_tokens a string": (config(max_tokens="256"), UnsafeModel, "max_tokens"),
    "dim -3": (config(dim=-3), UnsafeModel, "dim"),
    "dim 2**40": (config(dim=2**40), UnsafeModel, "dim"),
    "dim true": (config(dim=True), UnsafeModel, "dim"),
    "pooling unknown": (config(pooling="max"), UnsafeModel, "pooling"),
    "normalize a string": (config(normalize="no"), UnsafeModel, "normalize"),
    "sha256 not hex": (config(sha256={"model.onnx": "zz"}), UnsafeModel, "sha256"),
    "a list": ([1, 2], UnsafeModel, "JSON object"),
    "no dim": ({"name": "x"}, ModelError, "lacks dim"),
}


def config_bytes(value) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory holding a canary file, and an empty model cache."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "secret.env").write_bytes(CANARY)
    monkeypatch.chdir(work)
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEVEC_MODELS_DIR", str(cache))
    return tmp_path


def cache_is_empty(sandbox) -> bool:
    root = sandbox / "cache"
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def write_dir(path, model: bytes, tok: bytes | None = None, cfg: bytes | None = None):
    path.mkdir()
    (path / "model.onnx").write_bytes(model)
    (path / "tokenizer.json").write_bytes(tok if tok is not None else tokenizer_json())
    (path / "edgevec-model.json").write_bytes(cfg if cfg is not None
                                              else config_bytes(config()))
    return path


class Planted:
    """What stored.store needs of an Embedder, holding whatever bytes a test plants."""

    def __init__(self, model: bytes, tok: bytes, cfg: bytes) -> None:
        self._files = {"model.onnx": model, "tokenizer.json": tok, "edgevec-model.json": cfg}
        self.identity = {"name": "hostile", "dim": DIM, "variant": None,
                         "sha256": sha256_bytes(model)}

    def files(self) -> dict[str, bytes]:
        return self._files


def planted_index(path, model: bytes, tok: bytes | None = None, cfg: bytes | None = None):
    """An index whose stored model is these bytes, its header naming their true sha256."""
    with edgevec.Index.create(path, dim=DIM) as idx:
        stored.store(idx._w(), Planted(model, tok or tokenizer_json(),
                                       cfg or config_bytes(config())))
    return path


def text_query(path) -> None:
    with edgevec.open(path) as idx:
        idx.search("w1 w2 w3", k=3)


def test_the_benign_model_of_the_corpus_works(sandbox):
    """The control: the corpus's base graph loads, embeds and answers from an index."""
    emb = edgevec.Embedder.load(str(write_dir(sandbox / "ok", benign())))
    assert emb.encode(["w1 w2"]).shape == (1, DIM)
    path = planted_index(sandbox / "ok.edgevec", benign())
    with edgevec.open(path) as idx:
        assert len(idx.search("w1 w2", k=3)) == 0  # empty index, but the model ran


def test_without_the_gate_onnxruntime_reads_the_canary(sandbox, monkeypatch):
    """Why the gate exists: with it switched off, onnxruntime loads the initializer's
    external data from the working directory and the canary's bytes become the model's
    weights (so this test's canary check would see a leak)."""
    import onnxruntime as ort
    model = graph_model(pooled(), [external_table()])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    out = session.run(None, {"input_ids": np.zeros((1, 1), np.int64)})[0]
    assert out.astype(np.float32).tobytes() == CANARY


@pytest.mark.parametrize("case", sorted(MODELS))
def test_hostile_graphs_are_refused_as_a_directory_and_in_an_index(sandbox, case):
    build, error, words = MODELS[case]
    model = build()
    with pytest.raises(error, match=words) as info:
        edgevec.Embedder.load(str(write_dir(sandbox / "m", model))).encode(["w1 w2"])
    assert type(info.value) is error
    with pytest.raises(error, match=words) as info:
        text_query(planted_index(sandbox / "m.edgevec", model))
    assert type(info.value) is error
    if error is UnsafeModel:
        assert cache_is_empty(sandbox), "a refused graph reached the model cache"
    assert CANARY not in (sandbox / "m.edgevec").read_bytes()


@pytest.mark.parametrize("case", sorted(TOKENIZERS))
def test_hostile_tokenizers_are_refused(sandbox, case):
    build, error, words = TOKENIZERS[case]
    tok = build()
    with pytest.raises(error, match=words) as info:
        edgevec.Embedder.load(str(write_dir(sandbox / "t", benign(), tok=tok)))
    assert type(info.value) is error
    with pytest.raises(error, match=words) as info:
        text_query(planted_index(sandbox / "t.edgevec", benign(), tok=tok))
    assert type(info.value) is error
    assert cache_is_empty(sandbox)


def test_a_vocabulary_over_the_cap_is_refused(sandbox, monkeypatch):
    """The cap (1,000,000 entries with the added tokens) lowered to the corpus's size."""
    from edgevec.embed import tokenizer_gate
    monkeypatch.setattr(tokenizer_gate, "MAX_VOCAB", VOCAB - 1)
    with pytest.raises(UnsafeModel, match=f"vocabulary: {VOCAB} entries is over {VOCAB - 1}"):
        edgevec.Embedder.load(str(write_dir(sandbox / "v", benign())))


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_hostile_configs_are_refused(sandbox, case):
    value, error, words = CONFIGS[case]
    with pytest.raises(error, match=words) as info:
        edgevec.Embedder.load(str(write_dir(sandbox / "c", benign(), cfg=config_bytes(value))))
    assert type(info.value) is error
    with pytest.raises(error, match=words) as info:
        text_query(planted_index(sandbox / "c.edgevec", benign(), cfg=config_bytes(value)))
    assert type(info.value) is error


def test_a_config_nested_100000_deep_is_refused(sandbox):
    """json.loads of it raised RecursionError, which escaped the library."""
    deep = b'{"name": "x", "dim": 8, "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(UnsafeModel, match="nests"):
        edgevec.Embedder.load(str(write_dir(sandbox / "c", benign(), cfg=deep)))
    with pytest.raises(UnsafeModel, match="nests"):
        text_query(planted_index(sandbox / "c.edgevec", benign(), cfg=deep))


def test_a_stored_model_of_another_dim_than_the_index_is_refused(sandbox):
    """The config's dim was never compared with the index's."""
    path = sandbox / "d.edgevec"
    with edgevec.Index.create(path, dim=DIM * 2) as idx:
        stored.store(idx._w(), Planted(benign(), tokenizer_json(), config_bytes(config())))
    with pytest.raises(ModelMismatch, match="damaged"):
        text_query(path)


def test_max_tokens_beyond_the_position_table_is_refused(sandbox):
    """A config max_tokens over the model's position table made every long query fail
    inside onnxruntime; now the load says so (the 64-row table of a tiny BERT)."""
    from edgevec.embed.bert_onnx import BertConfig, build_bert, random_weights
    tiny = BertConfig(vocab_size=VOCAB, hidden=DIM, layers=1, heads=2, intermediate=16,
                      max_positions=64)
    model = build_bert(random_weights(tiny, seed=1), tiny, "fp32").SerializeToString()
    cfg = config_bytes(config(max_tokens=1000, pooling="none"))
    with pytest.raises(UnsafeModel, match="position table holds \\(64 rows\\)"):
        edgevec.Embedder.load(str(write_dir(sandbox / "p", model, cfg=cfg)))


def test_a_tokenizer_panic_becomes_model_error(sandbox):
    """A catastrophic regex made `tokenizers` raise pyo3's PanicException (onig's retry
    limit), a BaseException that `except Exception` does not catch. The gate refuses such
    regexes; should one get through, the failure is ModelError naming the model. Here a
    tokenizer with such a regex is put behind the gate's back."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    emb = edgevec.Embedder.load(str(write_dir(sandbox / "t", benign())))
    raw = Tokenizer(models.WordLevel({"w1": 1, "[UNK]": 0}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Split(Regex(r"(.+)+\d$"), "isolated")
    with pytest.raises(BaseException) as panic:
        raw.encode_batch(["a" * 40])
    assert not isinstance(panic.value, Exception)  # pyo3_runtime.PanicException
    emb._tok = raw
    with pytest.raises(ModelError, match="tokenizer failed.*40 characters") as info:
        emb.encode(["a" * 40])
    assert type(info.value) is ModelError


# the pre-tokenizer patterns of real tokenizers (GPT-2, GPT-4 cl100k / Llama 3, o200k)
SAFE_PATTERNS = [
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
    r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+",
    r"(ab)+", r"\d{1,3}(?=(?:\d{3})+$)", r"\w+|[^\w\s]+",
]
# exponential (nested or ambiguous repetition), cubic (\w*\w*\d: 2,048 letters took 16 s
# in `tokenizers`), backreferences
UNSAFE_PATTERNS = [r"(.+)+\d$", r"(a|ab)*c", r"(.*a){20}", r"(\w+\s?)+$", r"(a?)+",
                   r"((a)+)+", r"\w*\w*\d\W", r"(a)\1", r"\k<x>", r"(" * 40 + ")" * 40]


@pytest.mark.parametrize("pattern", SAFE_PATTERNS)
def test_real_pre_tokenizer_regexes_pass_the_gate(pattern):
    from edgevec.embed.tokenizer_gate import regex_problem
    assert regex_problem(pattern) is None


@pytest.mark.parametrize("pattern", UNSAFE_PATTERNS)
def test_backtracking_regexes_are_refused(pattern):
    from edgevec.embed.tokenizer_gate import regex_problem
    assert regex_problem(pattern)


def test_lone_surrogates_in_texts_are_invalid_input(sandbox):
    emb = edgevec.Embedder.load(str(write_dir(sandbox / "s", benign())))
    with pytest.raises(edgevec.InvalidInput, match="surrogate"):
        emb.encode(["fine", "bad \ud800 text"])


def test_control_flow_is_admitted_only_when_the_user_allows_it(sandbox):
    """A Loop is refused by default; a user may allow it for a model of their own (the
    gate still refuses external data there)."""
    d = write_dir(sandbox / "own", loop_model(trips=3))
    with pytest.raises(UnsafeModel, match="control flow"):
        edgevec.Embedder.load(str(d))
    emb = edgevec.Embedder.load(str(d), allow_control_flow=True)
    assert emb.encode(["w1"]).shape == (1, DIM)
    with pytest.raises(UnsafeModel, match="external data"):
        check_model(graph_model(pooled(), [external_table()]), "m", allow_control_flow=True)


def test_every_model_edgevec_builds_passes_the_gate(minilm):
    """The allow-list covers the project's own graphs and the optimised copies
    onnxruntime writes of them into the cache."""
    from edgevec.embed.session import WEIGHTS_FILE, cache_root
    root = cache_root()
    graphs = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
              if f == "model.onnx"]
    assert any("optimized" in g for g in graphs) and any("optimized" not in g for g in graphs)
    for g in graphs:
        weights = os.path.join(os.path.dirname(g), WEIGHTS_FILE)
        external = {WEIGHTS_FILE: os.path.getsize(weights)} if os.path.exists(weights) else None
        with open(g, "rb") as f:
            check_model(f.read(), g, external=external)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize("part", ["model.onnx", "tokenizer.json", "edgevec-model.json"])
def test_a_fifo_in_a_model_directory_is_refused_not_waited_on(sandbox, part):
    """open() of a FIFO blocks until a writer comes: Embedder.load hung on one."""
    d = write_dir(sandbox / "f", benign())
    (d / part).unlink()
    os.mkfifo(d / part)
    with pytest.raises(edgevec.InvalidInput, match="FIFO"):
        edgevec.Embedder.load(str(d))


def test_the_cli_answers_a_hostile_model_with_one_line_and_exit_1(sandbox, capsys):
    """`edgevec search FILE QUERY` on a file whose model reads a local file: one line on
    stderr naming the rule, exit code 1, no traceback."""
    from edgevec import cli
    path = planted_index(sandbox / "h.edgevec", graph_model(pooled(), [external_table()]))
    assert cli.main(["search", str(path), "w1 w2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "external data" in err[0] and "Traceback" not in err[0]
    assert cli.main(["info", str(path)]) == 0  # the header alone is fine to read
