"""Shared fixtures. Every random source is seeded; no test downloads anything."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "formats", "golden")
sys.path.insert(0, os.path.join(ROOT, "tests"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def golden_dir() -> str:
    return GOLDEN


@pytest.fixture(scope="session")
def models_dir() -> str:
    """Where the tests build the real text models: $EDGEVEC_MODELS_DIR, else .cache/models
    in the checkout (kept between runs; a fresh clone builds them in a few seconds from the
    installed weights package)."""
    path = os.environ.get("EDGEVEC_MODELS_DIR") or os.path.join(ROOT, ".cache", "models")
    os.environ["EDGEVEC_MODELS_DIR"] = path
    return path


@pytest.fixture(scope="session")
def minilm(models_dir):
    """The default model, built once per test session (int8 weights, fp32 compute)."""
    from edgevec.embed import Embedder, build_model
    build_model("minilm-l6", "int8", allow_download=False)
    return Embedder.load("minilm-l6")


SHARD_WORDS = ["alpha", "beta", "gamma", "delta", "zip", "csv", "bread", "river", "stone",
               "light"]


def _shard_batch(seed: int, n: int):
    from helpers import batch_vectors
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(SHARD_WORDS, size=rng.integers(2, 9))) for _ in range(n)]
    meta = [{"g": int(rng.integers(0, 3)), "seed": seed} for _ in range(n)]
    return batch_vectors(seed, n, 16), [f"s{seed}-{i}" for i in range(n)], texts, meta


@pytest.fixture()
def shards_and_whole(tmp_path):
    """Three shard files and one file with the same batches in the same order (float16
    kept, so exact scores do not depend on each file's int8 calibration), for the shard
    set tests, local and served on Ray."""
    import edgevec
    batches = [_shard_batch(seed, n) for seed, n in ((1, 40), (2, 25), (3, 60), (4, 7))]
    plan = [[0], [1, 2], [3]]  # which batches each shard holds
    whole = tmp_path / "whole.edgevec"
    paths = []
    with edgevec.Index.create(whole, dim=16, lexical=True, store_f16=True) as one:
        for j, part in enumerate(plan):
            path = tmp_path / f"shard-{j}.edgevec"
            with edgevec.Index.create(path, dim=16, lexical=True, store_f16=True) as shard:
                for b in part:
                    x, ids, texts, meta = batches[b]
                    shard.add(x, ids=ids, texts=texts, metadata=meta)
                    one.add(x, ids=ids, texts=texts, metadata=meta)
                if j == 1:
                    shard.delete(["s2-3", "s3-10"])
            paths.append(path)
        one.delete(["s2-3", "s3-10"])
    return paths, whole


SHARD_DOCS = ["Paris is the capital of France.", "The zipfile module reads ZIP archives.",
              "Baking bread needs flour.", "The csv module reads comma separated values."]


@pytest.fixture()
def text_shards(tmp_path, minilm):
    """Two shard files of two SHARD_DOCS each, embedded by the default text model."""
    import edgevec
    paths = []
    for j in range(2):
        path = tmp_path / f"t{j}.edgevec"
        with edgevec.Index.create(path, model="minilm-l6") as idx:
            idx.add(texts=SHARD_DOCS[2 * j:2 * j + 2], ids=[f"d{2 * j}", f"d{2 * j + 1}"])
        paths.append(path)
    return paths
