"""Text -> vectors with a tokenizer.json and an ONNX model, on the CPU, offline.

Texts are tokenized without padding, sorted by token count, cut into batches, padded to
the longest text of each batch (length bucketing: little work is spent on padding), run
through onnxruntime, pooled if the model outputs token embeddings, L2-normalised, and put
back in input order.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import (
    EdgevecError,
    InvalidInput,
    ModelError,
    ModelMismatch,
    UnsafeModel,
    reraise_interrupts,
)
from ..fileio import sha256_bytes
from ..progress import Progress
from .config import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILE, ModelConfig
from .session import create_session
from .tokenizer_gate import CHARS_PER_TOKEN, MAX_TOKENIZER_BYTES, load_tokenizer

__all__ = ["CONFIG_FILE", "MODEL_FILE", "TOKENIZER_FILE", "Embedder", "ModelConfig",
           "ModelError", "sha256_bytes"]  # the names models.py and older code import here

PROGRESS_MIN_TEXTS = 2000
# Long texts get smaller batches: attention memory grows with batch x tokens^2, and
# onnxruntime's arena keeps the largest batch's memory for the session's life.
MAX_BATCH_TOKENS = 4096
# Texts an embedder encodes with an unpacked session before it opens a prepacked one (see
# Embedder._count_texts): an unpacked run of MiniLM is ~6 ms slower, prepacking ~70 ms.
PREPACK_AFTER_TEXTS = 16
MAX_CONFIG_BYTES = 1 << 20
MAX_MODEL_BYTES = 2 << 30  # protobuf's limit: a larger ONNX model keeps external data
_SURROGATE = re.compile("[\ud800-\udfff]")


def _batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, max_tokens: int):
    """Consecutive runs of `order` (texts sorted by length) of at most `batch_size` texts
    and at most `max_tokens` padded tokens (always at least one text)."""
    a, n = 0, len(order)
    while a < n:
        b = min(n, a + batch_size)
        while b - a > 1 and (b - a) * int(lengths[order[b - 1]]) > max_tokens:
            b -= 1
        yield order[a:b]
        a = b


def _pooling_from_sentence_transformers(model_dir: str) -> str | None:
    path = os.path.join(model_dir, "1_Pooling", "config.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("pooling_mode_cls_token"):
        return "cls"
    if cfg.get("pooling_mode_mean_tokens"):
        return "mean"
    raise ModelError(f"{path}: only mean or CLS pooling is supported")


def _check_integer_products(config: ModelConfig, source: str) -> None:
    """Refuse a dyn8 model whose integer products onnxruntime cannot compute exactly on
    this CPU: it would give other vectors than where the index was built."""
    if config.variant != "dyn8":
        return
    from .exactness import integer_products_exact
    levels = config.weight_levels or 127  # dyn8 builds before weight_levels had 8 bits
    if not 1 <= levels <= 127:
        raise ModelError(f"{source}: weight_levels must be in 1..127, got {levels}")
    if not integer_products_exact(levels):
        raise ModelError(
            f"{source}: this dyn8 model has integer weights up to +-{levels}, whose products "
            "onnxruntime computes with saturation on this CPU (no AVX-512 VNNI / AVX-VNNI): "
            "its vectors would differ from those of the machine that built the index. "
            "Rebuild the model (`edgevec model build minilm-l6 --variant dyn8 --force`, "
            "7-bit weights, exact everywhere) and the index, or use the int8 variant")


def _read_regular(path: str, limit: int) -> bytes:
    """The bytes of the regular file `path` (a FIFO or device is InvalidInput, not a
    hang: edgevec.paths.open_regular); one over `limit` bytes cannot be a model part."""
    from ..paths import open_regular
    with open_regular(path, "model file") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise UnsafeModel(f"{path} is {size} bytes, over the {limit}-byte limit")
        return f.read()


def _config_json(data: bytes, source: str) -> Any:
    """A model config's JSON; its size and nesting bounded (it may come from an index)."""
    if len(data) > MAX_CONFIG_BYTES:
        raise UnsafeModel(f"{source}: the model config is {len(data)} bytes, over "
                          f"{MAX_CONFIG_BYTES}")
    try:
        return json.loads(data)
    except RecursionError:
        raise UnsafeModel(f"{source}: the model config nests too deeply") from None
    except ValueError as exc:
        raise ModelError(f"{source}: model config is not valid JSON ({exc})") from None


def _checked_loader(load: Callable[[], bytes], sha256: str, source: str
                    ) -> Callable[[], bytes]:
    """`load`, checked once against the digest the model is known by."""
    def checked() -> bytes:
        data = load()
        if data is None or sha256_bytes(data) != sha256:
            raise ModelError(f"{source}: the stored model.onnx does not match its recorded "
                             f"sha256 {sha256[:16]}...; the file is damaged")
        return data
    return checked


class Embedder:
    """A text embedding model: `encode(texts)` -> float32 [n, dim], L2-normalised.

    Load with `Embedder.load(name_or_directory)`, or `Embedder.from_bytes(...)` for a
    model carried inside an index file.
    """

    def __init__(self, model_bytes: bytes | Callable[[], bytes], tokenizer_json: bytes,
                 config: ModelConfig, *, threads: int | None = None, source: str = "<bytes>",
                 model_sha256: str | None = None, allow_control_flow: bool = False) -> None:
        """`model_bytes` may be a zero-argument callable with `model_sha256` given: the
        model is then read only if the optimised-graph cache lacks it (an index passes its
        stored model so, with the digest its header records), and checked against it.
        Every model passes the gate (formats/SPEC.md, "Security") before onnxruntime or
        `tokenizers` sees it; `allow_control_flow=True` lets a graph of your own use Loop,
        Scan, If and functions."""
        try:
            import onnxruntime  # noqa: F401 - imported here for the clear error below
            import tokenizers  # noqa: F401
        except ImportError as exc:  # pragma: no cover - both are runtime dependencies
            raise ModelError(f"text embedding needs onnxruntime and tokenizers: {exc}; "
                             "pip install onnxruntime tokenizers") from None
        self.config = config
        self.source = source
        _check_integer_products(config, source)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise InvalidInput(f"threads must be a positive int, got {threads!r}")
        if callable(model_bytes):
            if not model_sha256:
                model_bytes = model_bytes()
            else:
                model_bytes = _checked_loader(model_bytes, model_sha256, source)
        digest = model_sha256 if callable(model_bytes) else sha256_bytes(model_bytes)
        self._model_bytes = model_bytes
        self._tokenizer_json = tokenizer_json
        if not isinstance(allow_control_flow, bool):
            raise InvalidInput(f"allow_control_flow must be True or False, got "
                               f"{allow_control_flow!r:.40}")
        self._allow_control_flow = allow_control_flow
        tok = load_tokenizer(tokenizer_json, source)
        try:
            tok.no_padding()  # we pad per length bucket
            tok.enable_truncation(max_length=config.max_tokens)
        except BaseException as exc:  # noqa: BLE001 - pyo3 panics are BaseExceptions
            reraise_interrupts(exc)
            raise ModelError(f"{source}: tokenizer.json cannot be set up "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None
        self._tok = tok
        self._digest, self._threads, self._texts_done = digest, threads, 0
        self._session, facts = self._open_session(prepack=False)
        if facts.position_rows is not None and config.max_tokens > facts.position_rows:
            if config.dim == 0:  # a foreign directory without a config: fit its table
                self.config = config = replace(config, max_tokens=facts.position_rows)
                tok.enable_truncation(max_length=config.max_tokens)
            else:
                raise UnsafeModel(f"{source}: config max_tokens={config.max_tokens} is more "
                                  f"than the model's position table holds "
                                  f"({facts.position_rows} rows); set max_tokens to at most "
                                  "that")
        self._inputs = [i.name for i in self._session.get_inputs()]
        if "input_ids" not in self._inputs:
            raise ModelError(f"{source}: the ONNX model has no 'input_ids' input "
                             f"(inputs: {self._inputs})")
        out = self._session.get_outputs()
        names = [o.name for o in out]
        self._output = "sentence_embedding" if "sentence_embedding" in names else names[0]
        self._pooled = self._output == "sentence_embedding" or len(out[0].shape) == 2
        self.identity = self._identity()

    def _identity(self) -> dict[str, Any]:
        """What an index records of the model that embeds for it. `sha256` is the ONNX
        model's; `fingerprint` also covers the tokenizer and the config fields that change
        vectors (the same weights with another tokenizer.json are another model)."""
        c = self.config
        parts = {"model": self._digest, "tokenizer": sha256_bytes(self._tokenizer_json),
                 "dim": c.dim, "max_tokens": c.max_tokens, "pooling": c.pooling,
                 "normalize": c.normalize}
        fingerprint = sha256_bytes(json.dumps(parts, sort_keys=True).encode())
        return {"name": c.name, "dim": c.dim, "variant": c.variant, "sha256": self._digest,
                "fingerprint": fingerprint}

    def same_model(self, recorded: dict[str, Any]) -> bool:
        """Whether `recorded` (an identity an index stored) is this model: by fingerprint,
        or by the ONNX model's sha256 alone for files written before fingerprints."""
        if recorded.get("fingerprint"):
            return recorded["fingerprint"] == self.identity["fingerprint"]
        return recorded.get("sha256") == self.identity["sha256"]

    def _open_session(self, *, prepack: bool):
        """(session, the gate's facts of the graph)."""
        try:
            return create_session(self._model_bytes, self._digest, threads=self._threads,
                                  prepack=prepack, source=f"{self.source}: {MODEL_FILE}",
                                  allow_control_flow=self._allow_control_flow)
        except EdgevecError:
            raise
        except BaseException as exc:  # noqa: BLE001 - onnxruntime raises its own classes
            reraise_interrupts(exc)
            raise ModelError(f"{self.source}: model.onnx cannot be loaded ({str(exc)[:200]}); "
                             "rebuild it with `edgevec model build NAME`") from None

    def _count_texts(self, n: int) -> None:
        """A process that answers a query or two should not pay ~70 ms to repack the
        weights for faster runs; one that embeds more than PREPACK_AFTER_TEXTS texts
        switches to a prepacked session once (ski rental, like search.ScanEngine)."""
        if self._texts_done <= PREPACK_AFTER_TEXTS < self._texts_done + n:
            self._session = self._open_session(prepack=True)[0]
        self._texts_done += n

    # --- loading --------------------------------------------------------------------------

    @classmethod
    def load(cls, name_or_dir: str = "minilm-l6", *, variant: str | None = None,
             threads: int | None = None, verify: bool = True,
             allow_control_flow: bool = False) -> "Embedder":
        """A built model by name (from edgevec's model cache) or any model directory with
        model.onnx + tokenizer.json (+ edgevec-model.json or a sentence-transformers
        1_Pooling/config.json). Never downloads anything. The model passes the gate
        (formats/SPEC.md, "Security"); `allow_control_flow=True` admits Loop, Scan, If
        and functions in a graph you trust (an index file never gets this)."""
        from ..paths import check_path
        name_or_dir = check_path(name_or_dir, "model name or directory")
        if os.path.isdir(name_or_dir):
            return cls.from_directory(name_or_dir, threads=threads, verify=verify,
                                      allow_control_flow=allow_control_flow)
        from .models import model_dir
        return cls.from_directory(model_dir(name_or_dir, variant), threads=threads,
                                  verify=verify, allow_control_flow=allow_control_flow)

    @classmethod
    def from_directory(cls, path: str, *, threads: int | None = None,
                       verify: bool = True, allow_control_flow: bool = False) -> "Embedder":
        files = {}
        for name, limit in ((MODEL_FILE, MAX_MODEL_BYTES), (TOKENIZER_FILE, MAX_TOKENIZER_BYTES)):
            p = os.path.join(path, name)
            try:
                files[name] = _read_regular(p, limit)
            except OSError as exc:
                raise ModelError(f"{p}: {exc.strerror}; a model directory needs {MODEL_FILE} "
                                 f"and {TOKENIZER_FILE} (build the default one with "
                                 "`edgevec model build minilm-l6`)") from None
        cfg_path = os.path.join(path, CONFIG_FILE)
        if os.path.lexists(cfg_path):
            try:
                raw = _read_regular(cfg_path, MAX_CONFIG_BYTES)
            except OSError as exc:
                raise ModelError(f"{cfg_path}: {exc.strerror}") from None
            config = ModelConfig.from_json(_config_json(raw, cfg_path), cfg_path)
        else:
            config = None
        if config is not None and verify and config.sha256:
            for name, data in files.items():
                want = config.sha256.get(name)
                if want and sha256_bytes(data) != want:
                    raise ModelError(
                        f"{os.path.join(path, name)}: sha256 {sha256_bytes(data)[:16]}... does "
                        f"not match the recorded {want[:16]}...; the file is damaged or was "
                        f"changed. Rebuild: edgevec model build {config.name} --force")
        emb = cls(files[MODEL_FILE], files[TOKENIZER_FILE],
                  config or ModelConfig(name=os.path.basename(os.path.abspath(path)), dim=0),
                  threads=threads, source=path, allow_control_flow=allow_control_flow)
        if config is None:  # a foreign model directory: learn dim and pooling
            pooling = _pooling_from_sentence_transformers(path) or (
                "none" if emb._pooled else "mean")
            probe = emb._run_batch(["dimension probe"], pooling)
            emb.config = replace(emb.config, dim=int(probe.shape[1]), pooling=pooling)
            emb.identity = emb._identity()
        return emb

    def files(self) -> dict[str, bytes]:
        """The model's files (what an index stores to carry its model)."""
        if callable(self._model_bytes):
            self._model_bytes = self._model_bytes()
        return {MODEL_FILE: self._model_bytes, TOKENIZER_FILE: self._tokenizer_json,
                CONFIG_FILE: json.dumps(self.config.to_json(), sort_keys=True).encode()}

    @classmethod
    def from_files(cls, files: dict[str, Any], *, threads: int | None = None,
                   source: str = "<bytes>", model_sha256: str | None = None) -> "Embedder":
        """From the files of a model directory; files["model.onnx"] may be a callable that
        reads it (see __init__)."""
        missing = [n for n in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE) if not files.get(n)]
        if missing:
            raise ModelError(f"{source}: model files missing: {', '.join(missing)}")
        config = ModelConfig.from_json(_config_json(files[CONFIG_FILE], source), source)
        return cls(files[MODEL_FILE], files[TOKENIZER_FILE], config, threads=threads,
                   source=source, model_sha256=model_sha256)

    @classmethod
    def from_bytes(cls, model_bytes: bytes, tokenizer_json: bytes, config: dict | ModelConfig,
                   *, threads: int | None = None) -> "Embedder":
        cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_json(config)
        return cls(model_bytes, tokenizer_json, cfg, threads=threads)

    # --- encoding ---------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def name(self) -> str:
        return self.config.name

    def encode(self, texts: Sequence[str] | str, *, batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        """float32 [n, dim], L2-normalised, in input order. A single str gives [1, dim].

        An empty string is embedded like any text (it tokenizes to [CLS] [SEP]); texts
        longer than `max_tokens` tokens are truncated (and cut to 64 characters per token
        of `max_tokens` before tokenizing). A text with a lone surrogate is InvalidInput;
        a failure of the tokenizer or the model is ModelError."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidInput(f"texts[{i}] is {type(t).__name__}, expected str")
            bad = _SURROGATE.search(t)
            if bad:
                raise InvalidInput(f"texts[{i}] has a lone surrogate {bad.group()!r} at "
                                   f"character {bad.start()}: not valid Unicode text; decode "
                                   "your input with errors='replace'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput(f"batch_size must be a positive int, got {batch_size!r}")
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        self._count_texts(n)
        encodings = self._tokenize(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        order = np.argsort(lengths, kind="stable")
        with Progress("embedded", n, "texts",
                      enabled=show_progress and n >= PROGRESS_MIN_TEXTS) as shown:
            for idx in _batches(order, lengths, batch_size, MAX_BATCH_TOKENS):
                out[idx] = self._run(encodings, idx, lengths, self.config.pooling)
                shown.update(len(idx))
        return out

    def _tokenize(self, texts: list[str]):
        """The tokenizer's encodings of `texts`, each cut first to a length that bounds the
        tokenizer's work; whatever `tokenizers` raises (a pyo3 panic too) is ModelError."""
        cut = CHARS_PER_TOKEN * self.config.max_tokens
        texts = [t if len(t) <= cut else t[:cut] for t in texts]
        try:
            return self._tok.encode_batch(texts)
        except BaseException as exc:  # noqa: BLE001 - pyo3 panics are BaseExceptions
            reraise_interrupts(exc)
            longest = max(map(len, texts), default=0)
            raise ModelError(f"model {self.name} ({self.source}): its tokenizer failed on "
                             f"{len(texts)} text(s) of up to {longest} characters "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None

    def _run(self, encodings, idx: np.ndarray, lengths: np.ndarray, pooling: str) -> np.ndarray:
        width = int(lengths[idx].max())
        ids = np.zeros((len(idx), width), dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for r, i in enumerate(idx.tolist()):
            e = encodings[i].ids
            ids[r, :len(e)] = e
            mask[r, :len(e)] = 1
        feed = {"input_ids": ids}
        if "attention_mask" in self._inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        try:
            y = self._session.run([self._output], feed)[0].astype(np.float32, copy=False)
        except BaseException as exc:  # noqa: BLE001 - onnxruntime raises its own classes
            reraise_interrupts(exc)
            raise ModelError(f"model {self.name} ({self.source}) failed on a batch of "
                             f"{len(idx)} text(s) of up to {width} tokens "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None
        if y.ndim == 3:
            if pooling == "cls":
                y = y[:, 0]
            else:
                m = mask[:, :, None].astype(np.float32)
                y = (y * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        if y.ndim != 2 or (self.dim and y.shape[1] != self.dim):
            raise ModelMismatch(f"{self.source}: the model returned shape {list(y.shape)}, "
                                f"expected [batch, {self.dim}]")
        if not np.isfinite(y).all():
            raise ModelError(f"model {self.name} ({self.source}) returned NaN or infinite "
                             f"values for a batch of {len(idx)} text(s) of up to {width} "
                             "tokens; the model is damaged")
        if self.config.normalize:
            y = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        return y

    def _run_batch(self, texts: list[str], pooling: str) -> np.ndarray:
        enc = self._tokenize(texts)
        lengths = np.array([len(e.ids) for e in enc])
        return self._run(enc, np.arange(len(texts)), lengths, pooling)

    def check_dim(self, dim: int, where: str) -> None:
        if self.dim != dim:
            raise ModelMismatch(f"model {self.name} gives {self.dim}-dimensional vectors but "
                                f"{where} holds {dim}-dimensional ones; use the model the "
                                "index was built with")
