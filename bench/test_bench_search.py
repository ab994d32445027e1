"""Query latency of the product (issue: the main job end to end), side by side.

    python3 dev.py bench -k latency -s

Index files of 100k and 1M rows of 384-d embedding-like vectors (seeded; the model
travels in the file, so queries are real text embedded by it). Text query latency p50/p95
at 1 and 2 threads; vector query latency against FAISS IndexFlatIP (float32), FAISS
IndexBinaryFlat + float32 rescoring, and NumPy brute force on the same vectors; file size
per row; time to first result in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import edgevec
from conftest import cached

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from test_funnel_recall import embedding_like  # noqa: E402

QUERIES = ["how do I parse a csv file", "compress data with gzip", "open a tcp socket",
           "sort a list of tuples by the second item", "read a large file lazily",
           "parse command line arguments", "format a date as ISO 8601", "hash a password"]


def _models_env():
    os.environ.setdefault("EDGEVEC_MODELS_DIR", os.path.join(HERE, "..", ".cache", "models"))
    from edgevec.embed import build_model
    build_model("minilm-l6", allow_download=False)


# bump when what a build writes changes, so a cached file is built again (2: m measured
# with queries made off the rows, and again after 4x growth)
BUILD_VERSION = 2


def _index(data_dir: str, n: int) -> tuple[str, np.ndarray]:
    _models_env()
    x = embedding_like(n, seed=11)

    def make(tmp):
        with edgevec.Index.create(tmp, model="minilm-l6", overwrite=True) as idx:
            for a in range(0, n, 250_000):
                b = min(n, a + 250_000)
                idx.add(x[a:b], ids=list(range(a, b)),
                        texts=[f"passage {i}" for i in range(a, b)])
    return cached(os.path.join(data_dir, f"search-{n}-v{BUILD_VERSION}.edgevec"), make), x


def near_rows(x: np.ndarray, count: int) -> np.ndarray:
    """Queries like a corpus row but not equal to it."""
    rng = np.random.default_rng(5)
    q = x[rng.choice(len(x), count, replace=False)]
    q = q + 0.05 * rng.normal(size=q.shape).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _pct(times: list[float], p: float) -> float:
    return sorted(times)[min(len(times) - 1, int(p * len(times)))] * 1e3


@pytest.mark.parametrize("n", [100_000, 1_000_000])
def test_text_query_latency(data_dir, n):
    path, x = _index(data_dir, n)
    lines = []
    with edgevec.open(path) as idx:
        idx.search("warm up", k=10)
        for threads in (1, 2):
            times = []
            for _ in range(5):
                for q in QUERIES:
                    t = time.perf_counter()
                    idx.search(q, k=10, threads=threads)
                    times.append(time.perf_counter() - t)
            lines.append(f"  {threads} thread(s): p50 {_pct(times, 0.5):.2f} ms, "
                         f"p95 {_pct(times, 0.95):.2f} ms")
        # checked after timing: the funnel agrees with exact search over the same vectors
        # (queries from the data's own distribution: the synthetic rows are unrelated to
        # real text, so a text query's top 10 would be near-ties)
        qv = near_rows(x, 20)
        found = [np.array(r.ids) for r in idx.search(qv, k=10)]
        truth = [np.argsort(-(x @ q))[:10] for q in qv]
        recall = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth)])
        m = idx.info()["rescore_m"]
    size = os.path.getsize(path)
    print(f"\ntext query -> 10 results, {n:,} rows x 384-d (m={m}, recall@10 vs float32 "
          f"{recall:.2f}):\n" + "\n".join(lines)
          + f"\n  file: {size / n:.0f} bytes/row (incl. the 24 MB model) vs 1536 for a "
          "float32 flat index")
    assert recall >= 0.8
    if n == 100_000:
        assert _pct(times, 0.5) <= 10.0


def test_vector_query_vs_faiss_and_numpy(data_dir):
    faiss = pytest.importorskip("faiss")
    from edgevec import codecs
    n = 1_000_000
    path, x = _index(data_dir, n)
    qs = near_rows(x, 50)
    flat = faiss.IndexFlatIP(384)
    flat.add(x)
    binary = faiss.IndexBinaryFlat(384)
    binary.add(codecs.sign_bits(x).view(np.uint8))
    faiss.omp_set_num_threads(2)

    def faiss_binary_rescore(q):
        _, cand = binary.search(codecs.sign_bits(q[None, :]).view(np.uint8), 100)
        cand = cand[0]
        s = x[cand] @ q
        return cand[np.argsort(-s)[:10]]

    def numpy_brute(q):
        s = x @ q
        top = np.argpartition(-s, 10)[:10]
        return top[np.argsort(-s[top])]

    with edgevec.open(path) as idx:
        contenders = {
            "edgevec funnel": lambda q: idx.search(q, k=10, threads=2),
            "FAISS IndexFlatIP": lambda q: flat.search(q[None, :], 10),
            "FAISS binary + f32 rescore": faiss_binary_rescore,
            "numpy brute force": numpy_brute,
        }
        med = {}
        for name, fn in contenders.items():
            fn(qs[0])
            times = []
            for _ in range(2):
                for q in qs:
                    t = time.perf_counter()
                    fn(q)
                    times.append(time.perf_counter() - t)
            med[name] = _pct(times, 0.5)
        truth = [numpy_brute(q) for q in qs]
        found = [np.array(idx.search(q, k=10).ids) for q in qs]
    recall = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth)])
    ours = med["edgevec funnel"]
    print("\nvector query -> 10 results, 1M x 384-d, p50 ms (ratio to edgevec):\n" + "\n".join(
        f"  {name:<28} {ms:8.2f} ({ms / ours:5.1f}x)" for name, ms in med.items())
        + f"\n  edgevec recall@10 vs float32: {recall:.2f}")
    assert recall >= 0.8


FIRST = """
import time
t0 = time.perf_counter()
import edgevec
idx = edgevec.open({path!r})
res = idx.search("how do I parse a csv file", k=10)
print(time.perf_counter() - t0, len(res))
"""


def test_time_to_first_result_in_a_fresh_process(data_dir):
    path, _ = _index(data_dir, 100_000)
    code = FIRST.format(path=path)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm
    times = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env=dict(os.environ))
        wall = time.perf_counter() - t
        inside, count = out.stdout.split()
        assert int(count) == 10
        times.append((wall, float(inside)))
    wall, inside = sorted(times)[1]
    print(f"\ntime to first result in a fresh process (import, open, load the stored model, "
          f"first text query; warm compile cache): {inside * 1e3:.0f} ms after interpreter "
          f"start, {wall * 1e3:.0f} ms wall")
    assert inside <= 1.0


def test_batch_of_1000_vector_queries_vs_single_calls(data_dir):
    """Issue (one house): 1,000 text-free vector queries on 1M rows through one
    Index.search(batch) call (the batch kernel) against 1,000 single calls."""
    path, x = _index(data_dir, 1_000_000)
    q = near_rows(x, 1000)
    with edgevec.open(path) as idx:
        idx_m = idx.info()["rescore_m"]
        idx.search(q[:8], k=10)  # warm: kernels, page cache
        idx.search(q[0], k=10)
        times_batch, times_single = [], []
        for _ in range(3):  # alternating rounds; medians (the machine is shared)
            t = time.perf_counter()
            batch = idx.search(q, k=10)
            times_batch.append(time.perf_counter() - t)
            t = time.perf_counter()
            singles = [idx.search(v, k=10) for v in q]
            times_single.append(time.perf_counter() - t)
        assert all(a == b for a, b in zip(batch, singles))  # checked after timing
    t_batch, t_single = float(np.median(times_batch)), float(np.median(times_single))
    ratio = t_single / t_batch
    print(f"\n1,000 vector queries, 1M rows x 384-d, k=10, m={idx_m} (calibrated): one batch "
          f"call {t_batch:.2f} s, 1,000 single calls {t_single:.2f} s -> {ratio:.1f}x (issue "
          "target 3x)")
    assert ratio >= 2.5  # the target is 3x; a shared machine's noise gets some slack here
