"""Benchmark data: built once per machine into bench/.data (seeded), never downloaded."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

# Steady-state figures are those of the Numba kernels; a new process would otherwise scan
# with NumPy first (search.ScanEngine). test_bench_coldstart sets its own.
os.environ.setdefault("EDGEVEC_SCAN", "numba")

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("EDGEVEC_BENCH_DATA", os.path.join(HERE, ".data"))
sys.path.insert(0, HERE)

DIM = 384


def vectors(start: int, n: int, dim: int = DIM) -> np.ndarray:
    """Seeded float32 vectors of rows [start, start + n): a pure function of its args."""
    return np.random.default_rng(start).normal(size=(n, dim)).astype(np.float32)


def ids_for(start: int, n: int) -> list[str]:
    return [f"doc-{i:07d}" for i in range(start, start + n)]


def texts_for(start: int, n: int) -> list[str]:
    return [f"passage {i}: a short text of about sixty bytes, for size" for i in
            range(start, start + n)]


def build_edgevec(path: str, n: int, segments: int = 10) -> float:
    """Build an n-row file in `segments` commits (the same structure at every size, so
    that only the row count differs between the files compared)."""
    import edgevec
    chunk = -(-n // segments)
    t = time.perf_counter()
    with edgevec.Index.create(path, dim=DIM, overwrite=True) as idx:
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            idx.add(vectors(a, m), ids=ids_for(a, m), texts=texts_for(a, m))
    return time.perf_counter() - t


@pytest.fixture(scope="session")
def data_dir() -> str:
    os.makedirs(DATA, exist_ok=True)
    return DATA


def cached(path: str, make) -> str:
    if not os.path.exists(path):
        tmp = path + ".part"
        make(tmp)
        os.replace(tmp, path)
    return path


def pytest_report_header(config):
    """Every benchmark run starts with the CPU it ran on (features, Numba target,
    onnxruntime's integer exactness): figures from another CPU are another table."""
    from edgevec.cpu import summary
    return f"edgevec hardware: {summary()}"


# --- the known-item tasks on real corpora (quality and codec benches) --------------------

def mrr_at_10(ranked: list, targets: list) -> float:
    total = 0.0
    for found, target in zip(ranked, targets):
        found = list(found)[:10]
        if target in found:
            total += 1.0 / (found.index(target) + 1)
    return total / len(targets)


@pytest.fixture(scope="session")
def embedder():
    os.environ.setdefault("EDGEVEC_MODELS_DIR", os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "models"))
    from edgevec.embed import Embedder, build_model
    build_model("minilm-l6", allow_download=False)
    return Embedder.load("minilm-l6")


def make_task(embedder, pairs: list) -> tuple:
    """(pairs, ids, documents float32, queries float32) of (id, query, document) pairs."""
    ids = [p[0] for p in pairs]
    docs = embedder.encode([p[2] for p in pairs], batch_size=32)
    queries = embedder.encode([p[1] for p in pairs], batch_size=32)
    return pairs, ids, docs, queries


@pytest.fixture(scope="session")
def task(embedder):
    from edgevec.corpus import known_item_pairs, stdlib_docs
    return make_task(embedder, known_item_pairs(list(stdlib_docs())))


@pytest.fixture(scope="session")
def man_task(embedder):
    """The second corpus: this machine's manual pages (bench/manpages.py)."""
    import manpages
    pairs = manpages.known_item_pairs()
    if len(pairs) < 500:
        pytest.skip(f"{len(pairs)} usable manual pages under {manpages.MAN_DIRS} (need 500)")
    return make_task(embedder, pairs)
