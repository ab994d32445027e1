"""Kernel benchmarks (issue: the Numba search core), side by side with FAISS and NumPy.

    python3 dev.py bench -k kernels -s

1M random codes; queries: 1 and a batch of 64. JIT compilation is excluded from the
timings (every kernel is warmed first) and measured separately in a fresh process. Results
are checked after timing against FAISS or NumPy, so a fast wrong answer fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from edgevec import codecs, funnel, search
from edgevec.funnel import Segment

faiss = pytest.importorskip("faiss")
N = 1_000_000
ROUNDS = 15


def median_s(fn, rounds: int = ROUNDS) -> float:
    fn()  # warm: JIT, page cache, allocations
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def interleaved(fns: dict, rounds: int = ROUNDS, group: int = 4) -> dict:
    """Median seconds of each function, timed in alternating groups of `group` calls so
    that the machine's drift hits all of them alike (the ratios are what we report). The
    first call of each group is not counted: it pays for the previous library's idle
    threads still spinning (OpenBLAS, OpenMP) and for its caches."""
    for fn in fns.values():
        fn()
    times: dict = {name: [] for name in fns}
    for _ in range(max(1, rounds // (group - 1))):
        for name, fn in fns.items():
            for j in range(group):
                t = time.perf_counter()
                fn()
                if j:
                    times[name].append(time.perf_counter() - t)
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def target(name: str, value: float, goal: float) -> str:
    return f"{name} {value:.2f} (issue target {goal:g}: {'met' if value >= goal else 'NOT met'})"


def faiss_threads(n: int) -> None:
    faiss.omp_set_num_threads(n)


@pytest.fixture(scope="module")
def seq_read_gbs() -> float:
    """This machine's sequential read speed with 2 threads: NumPy's (SIMD) sum over each
    half of a 256 MB page-resident array in its own thread. The ceiling for any scan."""
    from concurrent.futures import ThreadPoolExecutor
    a = np.random.default_rng(0).integers(0, 2**63, size=32 * 2**20, dtype=np.int64)
    halves = [a[:len(a) // 2], a[len(a) // 2:]]
    with ThreadPoolExecutor(2) as ex:
        secs = median_s(lambda: list(ex.map(np.sum, halves)))
    gbs = a.nbytes / secs / 1e9
    print(f"\nsequential read, 2 threads (NumPy sum per half): {gbs:.1f} GB/s")
    return gbs


def _binary(bits: int) -> np.ndarray:
    return np.random.default_rng(bits).integers(0, 2**63, size=(N, bits // 64),
                                                dtype=np.int64).view(np.uint64)


@pytest.mark.parametrize("bits", [256, 384, 512, 1024])
def test_binary_single_query_vs_faiss(benchmark, seq_read_gbs, bits):
    codes = _binary(bits)
    q = np.random.default_rng(1).integers(0, 2**63, size=bits // 64,
                                          dtype=np.int64).view(np.uint64)
    k = 100
    index = faiss.IndexBinaryFlat(bits)
    index.add(codes.view(np.uint8))
    qb = q.view(np.uint8)[None, :]
    def faiss_at(t):
        def run():
            faiss_threads(t)
            index.search(qb, k)
        return run
    med = interleaved({"ours": lambda: search.hamming_topk(codes, q, k, threads=2),
                       1: faiss_at(1), 2: faiss_at(2)})
    ours, faiss_s = med.pop("ours"), med
    faiss_best = min(faiss_s.values())
    benchmark.pedantic(lambda: search.hamming_topk(codes, q, k, threads=2), rounds=ROUNDS,
                       warmup_rounds=1)
    d, r = search.hamming_topk(codes, q, k, threads=2)
    fd, fr = index.search(qb, k)
    np.testing.assert_array_equal(d, fd[0])  # same distances (ties may pick other rows)
    gbs = codes.nbytes / ours / 1e9
    ratio = faiss_best / ours
    benchmark.extra_info.update(faiss_1t_ms=faiss_s[1] * 1e3, faiss_2t_ms=faiss_s[2] * 1e3,
                                ratio=ratio, gbs=gbs)
    print(f"\nbinary {bits:>4} bits, 1 query, 1M rows: edgevec(2t) {ours * 1e3:.2f} ms, "
          f"FAISS 1t {faiss_s[1] * 1e3:.2f} ms / 2t {faiss_s[2] * 1e3:.2f} ms -> "
          f"{ratio:.1f}x; {gbs:.1f} GB/s = {gbs / seq_read_gbs:.0%} of sequential read; "
          f"{ours / N * 1e9:.2f} ns/vector\n  " + target("ratio", ratio, 1.8))
    assert ratio >= 1.0  # never slower than FAISS; 1.8x is the goal (see README)
    if bits >= 384:
        assert gbs >= 0.6 * seq_read_gbs


@pytest.mark.parametrize("bits", [256, 384, 512, 1024])
def test_binary_batch64_vs_faiss(benchmark, bits):
    codes = _binary(bits)
    qs = np.random.default_rng(2).integers(0, 2**63, size=(64, bits // 64),
                                           dtype=np.int64).view(np.uint64)
    k = 10
    index = faiss.IndexBinaryFlat(bits)
    index.add(codes.view(np.uint8))
    faiss_threads(2)
    med = interleaved({"ours": lambda: search.hamming_topk_batch(codes, qs, k, threads=2),
                       "faiss": lambda: index.search(qs.view(np.uint8), k)}, rounds=5)
    ours, faiss_s = med["ours"], med["faiss"]
    benchmark.pedantic(lambda: search.hamming_topk_batch(codes, qs, k, threads=2), rounds=5,
                       warmup_rounds=1)
    d, r = search.hamming_topk_batch(codes, qs, k, threads=2)
    fd, _ = index.search(qs.view(np.uint8), k)
    np.testing.assert_array_equal(d, fd)
    ratio = faiss_s / ours
    benchmark.extra_info.update(faiss_ms=faiss_s * 1e3, ratio=ratio)
    print(f"\nbinary {bits:>4} bits, 64 queries: edgevec {ours * 1e3:.1f} ms, FAISS(2t) "
          f"{faiss_s * 1e3:.1f} ms -> {ratio:.1f}x; {ours / N / 64 * 1e9:.3f} ns/vector/query"
          "\n  " + target("ratio", ratio, 2.5))
    assert ratio >= 1.5


@pytest.mark.parametrize("dim", [384, 768])
def test_int8_full_scan_vs_faiss_sq8(benchmark, dim):
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(N, dim)).astype(np.float32)
    cal = codecs.calibrate_int8(x[:100_000])
    codes = codecs.quantize_int8(x, cal)
    q = rng.normal(size=dim).astype(np.float32)
    k = 10
    sq = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit,
                                    faiss.METRIC_INNER_PRODUCT)
    sq.train(x[:100_000])
    sq.add(x)
    del x
    qq = search.quantize_query(q, cal)

    def faiss_at(t):
        def run():
            faiss_threads(t)
            sq.search(q[None, :], k)
        return run
    med = interleaved({"ours": lambda: search.dot_i8_topk(codes, qq, k, threads=2),
                       1: faiss_at(1), 2: faiss_at(2)}, rounds=7)
    ours, faiss_s = med.pop("ours"), med
    benchmark.pedantic(lambda: search.dot_i8_topk(codes, qq, k, threads=2), rounds=7,
                       warmup_rounds=1)
    s, r = search.dot_i8_topk(codes, qq, k, threads=2)
    from edgevec.kernels import reference as ref
    rs, rr = ref.dot_i8_topk(codes[:200_000], qq.q, 3)  # spot-check the scores
    exact = qq.bias + qq.scale * ref.dot_i8(codes[r], qq.q)
    np.testing.assert_allclose(s, exact)
    ratio = min(faiss_s.values()) / ours
    gbs = codes.nbytes / ours / 1e9
    benchmark.extra_info.update(faiss_1t_ms=faiss_s[1] * 1e3, faiss_2t_ms=faiss_s[2] * 1e3,
                                ratio=ratio, gbs=gbs)
    print(f"\nint8 {dim}-d full scan, 1M rows: edgevec(2t) {ours * 1e3:.1f} ms, FAISS SQ8 "
          f"1t {faiss_s[1] * 1e3:.1f} / 2t {faiss_s[2] * 1e3:.1f} ms -> {ratio:.1f}x; "
          f"{gbs:.1f} GB/s; {ours / N * 1e9:.2f} ns/vector\n  " + target("ratio", ratio, 1.0))
    assert ratio >= 1.0


def test_funnel_vs_numpy_brute_force(benchmark):
    dim, k, m = 384, 10, 10
    rng = np.random.default_rng(7)
    # clustered data so that the top-10 is meaningful
    centers = rng.normal(size=(1000, dim)).astype(np.float32)
    x = centers[rng.integers(0, 1000, size=N)] + 0.6 * rng.normal(size=(N, dim)).astype(
        np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cal = codecs.calibrate_int8(x[:100_000])
    seg = Segment(codecs.sign_bits(x), codecs.quantize_int8(x, cal), None)
    q = x[123] + 0.1 * rng.normal(size=dim).astype(np.float32)
    q /= np.linalg.norm(q)

    def brute():
        s = q @ x.T
        top = np.argpartition(-s, k)[:k]
        return top[np.argsort(-s[top])]
    med = interleaved({"numpy": brute,
                       "funnel": lambda: funnel.funnel_search([seg], cal, q, k, m=m,
                                                              rescore_f16=False, threads=2)},
                      rounds=9)
    numpy_s, total = med["numpy"], med["funnel"]
    benchmark.pedantic(lambda: funnel.funnel_search([seg], cal, q, k, m=m, rescore_f16=False,
                                                    threads=2), rounds=ROUNDS, warmup_rounds=1)
    # the rescoring stage alone, on the candidates the Hamming stage produced
    qbits = codecs.sign_bits(q[None, :])[0]
    _, cand = search.hamming_topk(seg.binary, qbits, k * m, threads=2)
    qq = search.quantize_query(q, cal)
    rescore = median_s(lambda: search.dot_i8_rescore(seg.int8, qq, cand))
    s, r = funnel.funnel_search([seg], cal, q, k, m=m, rescore_f16=False, threads=2)
    # checked after timing: the funnel's answer is, by definition, the top-k by int8 score
    # of the top-(k*m) by Hamming distance (NumPy reference)
    from edgevec.kernels import reference as ref
    _, ref_cand = ref.hamming_topk(seg.binary, qbits, k * m)
    ref_scores = qq.bias + qq.scale * ref.dot_i8(seg.int8[ref_cand], qq.q)
    want_s, want_r = search.best_k(ref_scores, ref_cand, k)
    np.testing.assert_array_equal(r, want_r)
    np.testing.assert_allclose(s, want_s, rtol=1e-5)
    truth = brute()
    recall = len(np.intersect1d(r, truth)) / k
    ratio = numpy_s / total
    benchmark.extra_info.update(numpy_ms=numpy_s * 1e3, ratio=ratio, recall=recall,
                                rescore_share=rescore / total)
    print(f"\nfunnel 1M x {dim}-d, k={k}, m={m}: {total * 1e3:.2f} ms (rescoring "
          f"{rescore * 1e3:.3f} ms = {rescore / total:.1%}); numpy brute force "
          f"{numpy_s * 1e3:.0f} ms -> {ratio:.0f}x faster; recall@10 vs float32 {recall:.2f} "
          "(synthetic clusters; quality on real embeddings: tests/test_funnel_recall.py)\n  "
          + target("ratio", ratio, 20))
    assert ratio >= 10
    assert rescore <= 0.05 * total


COMPILE = """
import time, numpy as np
t0 = time.perf_counter()
from edgevec import codecs, funnel, search
x = np.random.default_rng(0).normal(size=(1000, 384)).astype(np.float32)
cal = codecs.calibrate_int8(x)
seg = funnel.Segment(codecs.sign_bits(x), codecs.quantize_int8(x, cal), None)
t1 = time.perf_counter()
funnel.funnel_search([seg], cal, x[0], 10, m=10, rescore_f16=False)
search.hamming_topk_batch(seg.binary, seg.binary[:4], 10)
search.dot_i8_topk(seg.int8, search.quantize_query(x[0], cal), 10)
print(time.perf_counter() - t1)
"""


def test_compile_and_cached_load_time(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    run = [sys.executable, "-c", COMPILE]
    cold = float(subprocess.run(run, env=env, capture_output=True, text=True,
                                check=True).stdout)
    warm = float(subprocess.run(run, env=env, capture_output=True, text=True,
                                check=True).stdout)
    print(f"\nfirst search calls (every kernel): compile {cold:.1f} s; from the cache "
          f"{warm * 1e3:.0f} ms")
    assert warm < cold
