"""Format benchmarks (issue: single-file format): open time as the file grows, against
np.load of the same arrays and faiss.read_index of an equivalent IndexBinaryFlat; append
and compact throughput.

    python3 dev.py bench -k format

Each open is timed on a page-cached file (the question is whether open parses rows, not
how fast the disk is). Results are checked after timing.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

import edgevec
from conftest import DIM, build_edgevec, cached, ids_for, texts_for, vectors

SIZES = [10_000, 100_000, 1_000_000]


def _edgevec_file(data_dir: str, n: int) -> str:
    return cached(os.path.join(data_dir, f"open-{n}.edgevec"), lambda p: build_edgevec(p, n))


def _npz_arrays(data_dir: str, n: int) -> str:
    """The same arrays as the edgevec file: binary codes, int8 codes, ids, texts."""
    def make(tmp):
        with edgevec.open(_edgevec_file(data_dir, n)) as idx:
            s = idx._s
            segs = range(len(s.directory.segments))
            arrays = {
                "binary": np.concatenate([s.segment_array("binary", g) for g in segs]),
                "int8": np.concatenate([s.segment_array("int8", g) for g in segs]),
                "ids": np.array(ids_for(0, n)),
                "texts": np.array(texts_for(0, n)),
            }
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return cached(os.path.join(data_dir, f"open-{n}.npz"), make)


def _faiss_file(data_dir: str, n: int) -> str:
    faiss = pytest.importorskip("faiss")

    def make(tmp):
        index = faiss.IndexBinaryFlat(DIM)
        with edgevec.open(_edgevec_file(data_dir, n)) as idx:
            s = idx._s
            for g in range(len(s.directory.segments)):
                index.add(np.ascontiguousarray(s.segment_array("binary", g)).view(np.uint8))
        faiss.write_index_binary(index, tmp)
    return cached(os.path.join(data_dir, f"open-{n}.faissbin"), make)


def _warm(path: str) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


@pytest.mark.parametrize("n", SIZES)
def test_open_edgevec(benchmark, data_dir, n):
    path = _edgevec_file(data_dir, n)
    _warm(path)

    def run():
        idx = edgevec.open(path)
        idx.close()
    benchmark.pedantic(run, rounds=50, warmup_rounds=3)
    with edgevec.open(path) as idx:  # checked after timing
        assert len(idx) == n
        assert idx.get(ids_for(n - 1, 1)[0]).text == texts_for(n - 1, 1)[0]
    benchmark.extra_info["rows"] = n
    assert benchmark.stats.stats.median < 0.005, "open must stay within a few ms"


@pytest.mark.parametrize("n", SIZES)
def test_open_np_load(benchmark, data_dir, n):
    path = _npz_arrays(data_dir, n)
    _warm(path)

    def run():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out = benchmark.pedantic(run, rounds=3 if n >= 1_000_000 else 10, warmup_rounds=1)
    assert out["int8"].shape == (n, DIM) and out["ids"][-1] == ids_for(n - 1, 1)[0]


@pytest.mark.parametrize("n", SIZES)
def test_open_faiss_binary(benchmark, data_dir, n):
    faiss = pytest.importorskip("faiss")
    path = _faiss_file(data_dir, n)
    _warm(path)
    index = benchmark.pedantic(lambda: faiss.read_index_binary(path),
                               rounds=5 if n >= 1_000_000 else 20, warmup_rounds=1)
    assert index.ntotal == n


def _median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2] * 1e3


def test_open_stays_flat_ratios(data_dir):
    """Side by side in one test (no dependence on other tests' order): edgevec open at each
    size against np.load and faiss.read_index_binary of the same data."""
    faiss = pytest.importorskip("faiss")
    rows = {}
    for n in SIZES:
        ev, npz, fb = _edgevec_file(data_dir, n), _npz_arrays(data_dir, n), \
            _faiss_file(data_dir, n)
        for p in (ev, npz, fb):
            _warm(p)
        rounds = 3 if n >= 1_000_000 else 10
        rows[n] = (_median_ms(lambda: edgevec.open(ev).close(), 50),
                   _median_ms(lambda: dict(np.load(npz).items()),
                              rounds),
                   _median_ms(lambda: faiss.read_index_binary(fb), rounds))
    lines = ["", "open time, median ms (page-cached; 10 segments per file)",
             f"{'rows':>10} {'edgevec':>9} {'np.load':>9} {'faiss':>9} {'np/ev':>7} "
             f"{'faiss/ev':>8}"]
    for n, (ev, npz, fb) in rows.items():
        lines.append(f"{n:>10} {ev:>9.3f} {npz:>9.2f} {fb:>9.2f} {npz / ev:>7.0f} "
                     f"{fb / ev:>8.1f}")
    growth = rows[SIZES[-1]][0] / rows[SIZES[0]][0]
    lines.append(f"edgevec open, 1M rows / 10k rows: {growth:.2f}x")
    print("\n".join(lines))
    assert rows[SIZES[-1]][0] < 5.0, "open must stay within a few ms"
    assert growth < 3.0, f"edgevec open grew {growth:.1f}x from 10k to 1M rows"


def test_append_throughput(benchmark, tmp_path):
    n = 100_000
    x, ids, texts = vectors(0, n), ids_for(0, n), texts_for(0, n)
    paths = iter(range(1000))

    def setup():
        path = str(tmp_path / f"a{next(paths)}.edgevec")
        idx = edgevec.Index.create(path, dim=DIM)
        idx.add(vectors(10**7, 1000), ids=[f"seed-{i}" for i in range(1000)])  # calibrated
        return (idx,), {}

    def run(idx):
        idx.add(x, ids=ids, texts=texts)
        idx.close()
    benchmark.pedantic(run, setup=setup, rounds=3)
    secs = benchmark.stats.stats.median
    size = os.path.getsize(str(tmp_path / "a0.edgevec"))
    benchmark.extra_info.update(rows_per_s=n / secs, mb_per_s=size / secs / 1e6)
    print(f"\nappend 100k x {DIM}-d rows with str ids and texts: {n / secs:,.0f} rows/s, "
          f"{size / secs / 1e6:.1f} MB/s written")
    with edgevec.open(str(tmp_path / "a0.edgevec")) as idx:
        assert len(idx) == n + 1000 and idx.get(ids[-1]).text == texts[-1]


def test_compact_throughput(benchmark, data_dir, tmp_path):
    n = 200_000
    src = cached(os.path.join(data_dir, "compact-200k.edgevec"), lambda p: build_edgevec(p, n))
    work = str(tmp_path / "c.edgevec")
    dead = ids_for(0, n)[::5]

    def setup():
        shutil.copyfile(src, work)
        with edgevec.open(work, writable=True) as idx:
            idx.delete(dead)
        return (edgevec.open(work, writable=True),), {}

    def run(idx):
        idx.compact()
        idx.close()
    benchmark.pedantic(run, setup=setup, rounds=3)
    secs = benchmark.stats.stats.median
    size = os.path.getsize(work)
    live = n - len(dead)
    benchmark.extra_info.update(rows_per_s=live / secs, mb_per_s=size / secs / 1e6)
    print(f"\ncompact 200k rows (20% deleted): {live / secs:,.0f} live rows/s, "
          f"{size / secs / 1e6:.1f} MB/s written")
    with edgevec.open(work) as idx:
        assert len(idx) == live and dead[3] not in idx
        assert idx.get(ids_for(n - 1, 1)[0]).text == texts_for(n - 1, 1)[0]


def _drop_page_cache() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def test_cold_cache_rescoring(data_dir):
    """Rescoring 100 scattered candidates straight after the page cache was dropped: with
    MADV_RANDOM on the int8 section each row costs one page read, not a readahead window."""
    from edgevec import search
    path = _edgevec_file(data_dir, 1_000_000)
    rows = np.sort(np.random.default_rng(5).choice(100_000, size=100, replace=False))
    times = []
    for _ in range(5):
        if not _drop_page_cache():
            pytest.skip("dropping the page cache needs root")
        with edgevec.open(path) as idx:
            s = idx._s
            codes = s.segment_array("int8", 0)
            qq = search.quantize_query(np.ones(DIM, np.float32), s.calibration())
            t = time.perf_counter()
            scores = search.dot_i8_rescore(codes, qq, rows)
            times.append(time.perf_counter() - t)
            expected = qq.bias + qq.scale * (codes[rows].astype(np.int64) @ qq.q.astype(
                np.int64))
            np.testing.assert_allclose(scores, expected)
    ms = sorted(times)[2] * 1e3
    print(f"\ncold-cache rescoring of 100 rows (1M x {DIM} int8, MADV_RANDOM): {ms:.1f} ms")
    assert ms < 100
