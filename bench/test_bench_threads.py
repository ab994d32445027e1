"""Searches from several Python threads on one shared read-only Index (issue 23).

    python3 dev.py bench -k threads -s        (EDGEVEC_BENCH_THREADS_ROWS=100000,1000000)

Throughput of vector queries (test_bench_search's files: embedding-like 384-d rows, k=10,
the funnel at the depth measured on the index) and of lexical queries (test_bench_lexical's
Zipfian passages of ~100 words, 3 words of ranks 5-2000, k=10, analysis included), each
search with `threads=1`, from 1, 2 and 4 Python threads sharing one read-only Index:
queries per second and the ratio to one thread, from rounds interleaved 1, 2, 4, 1, 2,
4, ... in one run (medians). Kernels, page cache and each thread's scratch are warmed
first. Checked after timing: every thread count returned exactly the serial run's
results, and those are right (vector: recall@10 against exact float32 search; lexical:
every hit holds a query term, scores descending), so a fast wrong answer fails.

And the issue's error count: 4 threads searching one read-only handle while it is
refreshed in a tight loop and another handle commits adds and deletes and compacts:
0 errors over 100k searches (EDGEVEC_BENCH_THREADS_SEARCHES).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest

import edgevec
from conftest import cached
from test_bench_lexical import ROWS as LEXICAL_ROWS
from test_bench_lexical import _index as lexical_bench_index
from test_bench_lexical import passages
from test_bench_search import _index as search_bench_index
from test_bench_search import near_rows

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from test_threads import build as build_small, race  # noqa: E402

SIZES = [int(n) for n in os.environ.get("EDGEVEC_BENCH_THREADS_ROWS",
                                         "100000,1000000").split(",")]
SEARCHES = int(os.environ.get("EDGEVEC_BENCH_THREADS_SEARCHES", "100000"))
THREADS = (1, 2, 4)
QUERIES = 240  # per round, dealt round-robin to the threads
ROUNDS = 5
TARGET = 1.7  # issue 23: 2 Python threads on a 2-core machine
# From FLOOR_ROWS rows on, the kernels are most of a query's time: 2 threads below FLOOR x
# one fail (a GIL held through the scans gives ~1.0x; TARGET is the goal, on a shared VM).
# Below, the Python work of a query (~0.2-0.4 ms, holding the GIL) caps the ratio.
FLOOR_ROWS = 1_000_000
FLOOR = 1.3


def _lexical_index(data_dir: str, n: int) -> str:
    """n Zipfian passages in segments of 250k: test_bench_lexical's file at its size."""
    if n == LEXICAL_ROWS:
        return lexical_bench_index(data_dir)

    def make(tmp):
        with edgevec.Index.create(tmp, dim=8, lexical=True, overwrite=True) as idx:
            for a in range(0, n, 250_000):
                b = min(n, a + 250_000)
                idx.add(np.random.default_rng(a).normal(size=(b - a, 8)),
                        texts=passages(a, b - a))
    return cached(os.path.join(data_dir, f"threads-lex-{n}.edgevec"), make)


def _lexical_queries() -> list[str]:
    rng = np.random.default_rng(3)
    return [" ".join(f"w{i}x" for i in rng.integers(5, 2000, size=3)) for _ in range(QUERIES)]


def _in_threads(search, queries, threads: int) -> tuple[float, list]:
    """(seconds, results in query order) of `queries` dealt round-robin to `threads`
    Python threads, timed from a common start to the last one's end."""
    found: list = [None] * len(queries)
    start = threading.Barrier(threads + 1)

    def run(j: int) -> None:
        start.wait()
        for i in range(j, len(queries), threads):
            found[i] = search(queries[i])
    workers = [threading.Thread(target=run, args=(j,)) for j in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - t, found


def _throughput(search, queries) -> tuple[dict, dict]:
    """Median queries/s by thread count over interleaved rounds, and each count's last
    results."""
    for t in THREADS:  # warm: kernels, page cache, every thread's BM25 scratch
        _in_threads(search, queries, t)
    rates: dict = {t: [] for t in THREADS}
    results: dict = {}
    for _ in range(ROUNDS):
        for t in THREADS:
            seconds, results[t] = _in_threads(search, queries, t)
            rates[t].append(len(queries) / seconds)
    return {t: float(np.median(r)) for t, r in rates.items()}, results


def _report(kind: str, n: int, rates: dict, detail: str) -> str:
    from edgevec.cpu import summary
    one = rates[1]
    lines = [f"\nedgevec hardware: {summary()}",
             f"{kind} queries, {n:,} rows, threads=1 per search, one shared read-only "
             f"Index ({detail})",
             "| Python threads | queries/s | ratio to 1 thread |", "| --- | --- | --- |"]
    lines += [f"| {t} | {r:,.0f} | {r / one:.2f}x |" for t, r in rates.items()]
    ratio = rates[2] / one
    lines.append(f"2 threads: {ratio:.2f}x (issue target >= {TARGET}x on 2 cores: "
                 f"{'met' if ratio >= TARGET else 'NOT met'})")
    return "\n".join(lines)


@pytest.mark.parametrize("n", SIZES)
def test_vector_query_throughput_from_1_2_4_threads(benchmark, data_dir, n):
    """test_bench_search's file (n embedding-like 384-d rows, the text model inside),
    queried by vector."""
    path, x = search_bench_index(data_dir, n)
    queries = near_rows(x, QUERIES)
    with edgevec.open(path) as idx:
        def search(q):
            return idx.search(q, k=10, threads=1).ids
        rates, results = _throughput(search, queries)
        benchmark.pedantic(lambda: _in_threads(search, queries, 2), rounds=3)
        serial = [search(q) for q in queries]
        m = idx.info()["rescore_m"]
    # checked after timing: the same results from every thread count, and right ones
    assert all(results[t] == serial for t in THREADS)
    truth = [np.argsort(-(x @ q))[:10] for q in queries[:40]]
    recall = np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(serial, truth)])
    benchmark.extra_info.update({f"qps_{t}": r for t, r in rates.items()},
                                ratio_2=rates[2] / rates[1], ratio_4=rates[4] / rates[1])
    print(_report("vector", n, rates, f"384-d, k=10, funnel m={m}, recall@10 vs float32 "
                                      f"{recall:.2f}"))
    assert recall >= 0.8
    if n >= FLOOR_ROWS:
        assert rates[2] / rates[1] >= FLOOR


@pytest.mark.parametrize("n", SIZES)
def test_lexical_query_throughput_from_1_2_4_threads(benchmark, data_dir, n):
    path = _lexical_index(data_dir, n)
    queries = _lexical_queries()
    analyzer = edgevec.lexical.Analyzer(stop_words="en")
    with edgevec.open(path) as idx:
        def search(q):
            res = idx.search(q, k=10, mode="lexical", threads=1)
            return res.ids, tuple(res.scores.tolist()), res.texts
        rates, results = _throughput(search, queries)
        benchmark.pedantic(lambda: _in_threads(search, queries, 2), rounds=3)
        serial = [search(q) for q in queries]
    # checked after timing: the same results from every thread count, and right ones
    assert all(results[t] == serial for t in THREADS)
    for q, (ids, scores, texts) in zip(queries, serial):
        terms = set(analyzer.terms(q))
        assert len(ids) == 10 and list(scores) == sorted(scores, reverse=True)
        assert all(terms & set(analyzer.terms(t)) for t in texts)
    benchmark.extra_info.update({f"qps_{t}": r for t, r in rates.items()},
                                ratio_2=rates[2] / rates[1], ratio_4=rates[4] / rates[1])
    print(_report("lexical", n, rates, "3-term BM25 over Zipfian passages of ~100 words, "
                                       "k=10, analysis included"))
    if n >= FLOOR_ROWS:
        assert rates[2] / rates[1] >= FLOOR


def test_shared_index_searched_from_4_threads_while_another_handle_commits_and_compacts(
        tmp_path):
    """Issue 23's count: 0 errors over SEARCHES searches (vector and lexical in turn, a
    `get` every 8th, each checked) from 4 threads sharing one read-only handle, refreshed
    in a tight loop by a fifth while a writable handle adds, deletes and compacts
    (tests/test_threads.race)."""
    path = tmp_path / "race.edgevec"
    build_small(path)
    t = time.perf_counter()
    report = race(path, searchers=4, searches=SEARCHES // 4, writable_searchers=0)
    seconds = time.perf_counter() - t
    print(f"\n4 threads, {report['searches']:,} searches on a shared read-only handle in "
          f"{seconds:.0f} s while it was refreshed {report['refreshed']:,} times onto new "
          f"commits ({report['cycles']:,} add + delete cycles, a compaction every third): "
          f"{sum(report['errors'].values())} errors")
    assert report["errors"] == {} and report["searches"] >= SEARCHES
