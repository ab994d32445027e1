"""Beyond one machine (issue: Ray builds, shard sets).

    python3 dev.py bench -k shards -s

1. A 4-shard set against one file holding the same 1M rows (384-d seeded vectors,
   Zipfian passages; the one file is the hybrid bench's, whose 4 segments are the 4
   shards), one query at a time, dense / lexical / hybrid, interleaved. Checked after
   timing: lexical results are the same rows (BM25 statistics summed over the shards),
   dense top-10 overlap (each shard's int8 calibration is its own).
2. The same 4 shards served on a local Ray instance (one actor per shard) against the
   same set opened locally: the scatter-gather overhead per query, per mode. Checked:
   the same results.
3. A build on a local Ray instance (2 actors x 1 thread, the same 2 cores) against the
   local build of the same corpus: throughput, Ray's start-up, the per-chunk round trip,
   and the bytes shipped per passage. Checked: the same file.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

import edgevec
from conftest import cached, vectors
from test_bench_lexical import ROWS, passages

SHARDS = 4


def _shards(data_dir: str) -> list[str]:
    step = ROWS // SHARDS
    paths = []
    for j in range(SHARDS):
        def make(tmp, a=j * step):
            with edgevec.Index.create(tmp, dim=384, lexical=True, overwrite=True) as idx:
                idx.add(vectors(a, step, 384), ids=list(range(a, a + step)),
                        texts=passages(a, step))
        paths.append(cached(os.path.join(data_dir, f"shard-{j}-of-{SHARDS}-{ROWS}.edgevec"),
                            make))
    return paths


def _one(data_dir: str) -> str:
    def make(tmp):
        with edgevec.Index.create(tmp, dim=384, lexical=True, overwrite=True) as idx:
            for a in range(0, ROWS, ROWS // SHARDS):
                n = ROWS // SHARDS
                idx.add(vectors(a, n, 384), ids=list(range(a, a + n)), texts=passages(a, n))
    return cached(os.path.join(data_dir, f"shard-whole-{ROWS}.edgevec"), make)


def test_shard_set_query_latency_vs_one_file(data_dir):
    paths, whole = _shards(data_dir), _one(data_dir)
    rng = np.random.default_rng(21)
    picks = rng.integers(0, ROWS, size=60)
    texts = [" ".join(f"w{i}x" for i in rng.integers(5, 2000, size=3)) for _ in picks]
    times = {(who, mode): [] for who in ("one", "set") for mode in ("dense", "lexical",
                                                                    "hybrid")}
    found = {key: [] for key in times}
    with edgevec.open(whole) as one, edgevec.open_many(paths) as many:
        q = one._s.vectors(picks) + rng.normal(scale=0.05, size=(len(picks), 384)
                                               ).astype(np.float32)
        for idx in (one, many):  # warm
            idx.search(q[0], k=10, text=texts[0])
        for i in range(len(picks)):
            for mode in ("dense", "lexical", "hybrid"):
                query = texts[i] if mode == "lexical" else q[i]
                text = texts[i] if mode == "hybrid" else None
                for who, idx in (("one", one), ("set", many)):
                    t = time.perf_counter()
                    res = idx.search(query, k=10, mode=mode, text=text)
                    times[who, mode].append(time.perf_counter() - t)
                    found[who, mode].append(res)
    lines = [f"4-shard set vs one file, {ROWS:,} rows x 384-d + ~100-word passages, k=10, "
             "one query at a time (embedding left out), p50 / p95 ms:"]
    for mode in ("dense", "lexical", "hybrid"):
        o = np.percentile(times["one", mode], [50, 95]) * 1e3
        s = np.percentile(times["set", mode], [50, 95]) * 1e3
        lines.append(f"  {mode:<8} one file {o[0]:.2f} / {o[1]:.2f}, shard set {s[0]:.2f} / "
                     f"{s[1]:.2f} ({s[0] / o[0]:.2f}x)")
    overlap = np.mean([len(set(a.ids) & set(b.ids)) for a, b in
                       zip(found["one", "dense"], found["set", "dense"])])
    lines.append(f"  dense top-10 overlap, shard set vs one file: {overlap:.2f} of 10")
    print("\n" + "\n".join(lines))
    for a, b in zip(found["one", "lexical"], found["set", "lexical"]):
        assert a.ids == b.ids  # the same statistics, the same global row order
    assert overlap >= 9.0


def test_served_shard_set_latency_vs_local_set(data_dir):
    ray = pytest.importorskip("ray")
    paths = _shards(data_dir)
    rng = np.random.default_rng(22)
    texts = [" ".join(f"w{i}x" for i in rng.integers(5, 2000, size=3)) for _ in range(40)]
    q = rng.normal(size=(len(texts), 384)).astype(np.float32)
    for path in paths:  # in the page cache, as for the local set's earlier bench
        with open(path, "rb") as f:
            while f.read(1 << 26):
                pass
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        t = time.perf_counter()
        served = edgevec.open_many(paths, on_ray=True)
        t_open = time.perf_counter() - t
        times = {(who, mode): [] for who in ("local", "served")
                 for mode in ("dense", "lexical", "hybrid")}
        found = {key: [] for key in times}
        with served, edgevec.open_many(paths) as local:
            for idx in (local, served):  # warm: Numba loaded in every actor
                for j in range(5):
                    idx.search(q[j], k=10, text=texts[j])
            # in blocks, not interleaved: after a local scan this process's OpenMP threads
            # spin for a while, taking the cores the actors need
            for mode in ("dense", "lexical", "hybrid"):
                for who, idx in (("local", local), ("served", served)):
                    for i in range(len(texts)):
                        query = texts[i] if mode == "lexical" else q[i]
                        text = texts[i] if mode == "hybrid" else None
                        t = time.perf_counter()
                        res = idx.search(query, k=10, mode=mode, text=text)
                        times[who, mode].append(time.perf_counter() - t)
                        found[who, mode].append(res)
    finally:
        ray.shutdown()
    lines = [f"4 shards of {ROWS // SHARDS:,} rows served on a local Ray instance (2 CPUs, "
             f"one actor per shard; opening {t_open:.1f} s incl. Ray's start) vs the same "
             "set opened locally, k=10, one query at a time, p50 / p95 ms:"]
    for mode, rounds in (("dense", 2), ("lexical", 3), ("hybrid", 4)):
        a = np.percentile(times["local", mode], [50, 95]) * 1e3
        b = np.percentile(times["served", mode], [50, 95]) * 1e3
        lines.append(f"  {mode:<8} local {a[0]:.2f} / {a[1]:.2f}, served {b[0]:.2f} / "
                     f"{b[1]:.2f} ({b[0] / a[0]:.2f}x; {rounds} rounds, "
                     f"{(b[0] - a[0]) / rounds:.2f} ms per round over local)")
    print("\n" + "\n".join(lines))
    for key in found:
        if key[0] == "served":
            assert found[key] == found["local", key[1]]  # the same hits, scores, rows


def test_ray_build_throughput_vs_local(tmp_path, data_dir):
    ray = pytest.importorskip("ray")
    from edgevec.build import CHUNK_DOCS, build
    from edgevec.embed import Embedder
    from edgevec.integrations.ray import embed_chunks
    os.environ.setdefault("EDGEVEC_MODELS_DIR", os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "models"))
    n = CHUNK_DOCS * 4
    corpus = tmp_path / "corpus.jsonl"
    with open(corpus, "w", encoding="utf-8") as f:
        for i, text in enumerate(passages(0, n)):
            f.write(json.dumps({"id": f"p{i}", "text": " ".join(text.split()[:60])}) + "\n")
    t = time.perf_counter()
    local = build([str(corpus)], str(tmp_path / "local.edgevec"), quiet=True)
    t_local = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    t_start = time.perf_counter() - t
    try:
        t = time.perf_counter()
        build([str(corpus)], str(tmp_path / "ray.edgevec"), quiet=True, ray=True, actors=2)
        t_ray = time.perf_counter() - t
        emb = Embedder.load("minilm-l6")
        one = [[type("D", (), {"text": "x"})()]] * 40  # 40 one-word chunks: the round trip
        list(embed_chunks(iter(one[:2]), emb, actors=2))  # actors up
        t = time.perf_counter()
        list(embed_chunks(iter(one), emb, actors=2))
        t_chunks = time.perf_counter() - t
        t = time.perf_counter()
        for c in one:
            emb.encode([d.text for d in c])
        t_local_chunks = time.perf_counter() - t
    finally:
        ray.shutdown()
    assert (tmp_path / "ray.edgevec").read_bytes() == (tmp_path / "local.edgevec").read_bytes()
    text_bytes = os.path.getsize(corpus) / n
    print(f"\nbuild of {n:,} passages (~60 words), 2 cores: local {n / t_local:,.0f} "
          f"passages/s ({t_local:.1f} s), Ray 2 actors x 1 thread {n / t_ray:,.0f} "
          f"passages/s ({t_ray:.1f} s, {t_local / t_ray:.2f}x local; actors started inside)"
          f"\n  Ray start-up (ray.init) {t_start:.1f} s; a one-word chunk through the actor "
          f"pool {(t_chunks / len(one)) * 1e3:.1f} ms vs {(t_local_chunks / len(one)) * 1e3:.1f}"
          f" ms embedding it here (pool start-up included once)\n  shipped per passage: "
          f"~{text_bytes:.0f} bytes of text out, {emb.dim * 4} bytes of float32 vector back")
    assert local.documents == n
