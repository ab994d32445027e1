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
