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
