"""The text model an index carries: its files as blob sections of the index, its
identity in the header, and the checks that vectors come from it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import DimensionMismatch, InvalidInput, ModelMismatch
from ..storage.reader import Snapshot
from ..storage.writer import Pending, Writer
from .embedder import Embedder

PREFIX = "model/"


def resolve(model: Any, dim: Any) -> Embedder:
    """`Index.create(model=...)`: a model name, a model directory or an Embedder, and the
    dim the caller gave (None, or the model's own)."""
    if not isinstance(model, (str, os.PathLike, Embedder)):
        raise InvalidInput(f"model must be a model name, a model directory or an Embedder, "
                           f"got {type(model).__name__} {model!r:.60}")
    embedder = model if isinstance(model, Embedder) else Embedder.load(model)
    if dim is not None and dim != embedder.dim:
        raise DimensionMismatch(f"dim={dim!r:.60} but model {embedder.name} gives "
                                f"{embedder.dim}-dimensional vectors; omit dim")
    return embedder


def store(writer: Writer, embedder: Embedder) -> Embedder:
    """Put `embedder`'s files into the writer's index as blob sections and its identity
    into the header, in one commit."""
    blobs = embedder.files()
    sections = [Pending("blob", iter([np.frombuffer(data, np.uint8)]), "|u1", (len(data),),
                        {"name": PREFIX + name}) for name, data in sorted(blobs.items())]
    writer.commit(sections, segment_rows=None, meta={"embedder": embedder.identity})
    return embedder


def load(snap: Snapshot) -> Embedder | None:
    """The model stored in `snap`'s file, or None. The 24 MB ONNX model is read only if
    this machine has no optimised copy of it yet."""
    recorded = snap.meta.get("embedder")
    if not recorded:
        return None
    files = {name[len(PREFIX):]: _later(snap, name) if name.endswith(".onnx")
             else snap.blob(name) for name in snap.blob_names() if name.startswith(PREFIX)}
    embedder = Embedder.from_files(files, source=f"{snap.path} (stored model)",
                                   model_sha256=recorded.get("sha256"))
    if embedder.dim != snap.dim:
        raise ModelMismatch(f"{snap.path}: the stored model gives {embedder.dim}-dimensional "
                            f"vectors but the index holds {snap.dim}-dimensional ones; the "
                            "file is damaged")
    if not embedder.same_model(recorded):
        raise ModelMismatch(f"{snap.path}: the stored model does not match the identity "
                            "recorded in the header; the file is damaged")
    return embedder


def _later(snap: Snapshot, name: str):
    """A reader of blob `name` for when the embedder needs it (its cache misses), which
    may be long after `snap` was closed (a refresh or a commit replaced it): then it
    reads the file's current state, whose bytes the embedder checks against the sha256
    `snap` recorded (a changed model is a ModelError, never a silent swap)."""
    def read() -> bytes | None:
        if snap.acquire():
            try:
                return snap.blob(name)
            finally:
                snap.release()
        with Snapshot(snap.path) as now:
            return now.blob(name)
    return read


def check(embedder: Any, snap: Snapshot) -> None:
    """That vectors from `embedder` belong in `snap`'s index: the same model as the stored
    one (model, tokenizer and pooling), or the right dim for an index without a model.
    None (the caller named no embedder) passes."""
    if embedder is None:
        return
    if not isinstance(embedder, Embedder):
        raise InvalidInput(f"embedder must be an edgevec.Embedder, got "
                           f"{type(embedder).__name__}")
    stored = snap.meta.get("embedder")
    if stored is None:
        embedder.check_dim(snap.dim, snap.path)
        return
    if not embedder.same_model(stored):
        fingerprint = (stored.get("fingerprint") or stored.get("sha256", ""))[:12]
        raise ModelMismatch(f"{snap.path} was built with model {stored.get('name')} "
                            f"({stored.get('variant')}, fingerprint {fingerprint}...); the "
                            f"given embedder is {embedder.name} (fingerprint "
                            f"{embedder.identity['fingerprint'][:12]}...: model, tokenizer and "
                            "pooling together). Query with text and the index embeds it with "
                            "its own model")
