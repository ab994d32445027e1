"""Index.search over a real file: funnel, exact mode, batches, deletions, bad queries."""

from __future__ import annotations

import numpy as np
import pytest

import edgevec
from edgevec import calibration, search
from test_funnel_recall import embedding_like


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    x = embedding_like(6000, dim=128, seed=5)
    path = str(tmp_path_factory.mktemp("s") / "s.edgevec")
    with edgevec.Index.create(path, dim=128, store_f16=True) as idx:
        for a in range(0, 6000, 2000):  # three segments
            idx.add(x[a:a + 2000], ids=[f"r{i}" for i in range(a, a + 2000)],
                    texts=[f"text {i}" for i in range(a, a + 2000)],
                    metadata=[{"i": i} for i in range(a, a + 2000)])
    return path, x


def test_search_returns_frozen_results(built):
    path, x = built
    with edgevec.open(path) as idx:
        res = idx.search(x[10], k=5)
        assert isinstance(res, edgevec.Results) and len(res) == 5
        assert res.ids[0] == "r10" and res.texts[0] == "text 10"
        assert res.metadata[0] == {"i": 10}
        assert np.all(np.diff(res.scores) <= 0)
        assert res[0].id == "r10" and res.to_list()[0]["id"] == "r10"
        with pytest.raises(ValueError):
            res.scores[0] = 1
        with pytest.raises(AttributeError):
            res.ids = ()


def test_funnel_matches_exact_on_most_queries(built):
    path, x = built
    with edgevec.open(path) as idx:
        truth = [search.best_k(x @ x[i], np.arange(len(x)), 10)[1] for i in range(0, 6000, 300)]
        batch = idx.search(x[0:6000:300], k=10, m=20)
        assert isinstance(batch, edgevec.BatchResults) and len(batch) == 20
        found = [np.array([int(i[1:]) for i in r.ids]) for r in batch]
        assert calibration.recall_at_k(found, truth) >= 0.95
        exact = idx.search(x[0:6000:300], k=10, exact=True)
        found = [np.array([int(i[1:]) for i in r.ids]) for r in exact]
        assert calibration.recall_at_k(found, truth) >= 0.99  # float16 vs float32 ties only


def test_deleted_rows_never_come_back(built, tmp_path):
    path, x = built
    import shutil
    p = str(tmp_path / "d.edgevec")
    shutil.copyfile(path, p)
    with edgevec.open(p, writable=True) as idx:
        before = idx.search(x[100], k=10)
        idx.delete(list(before.ids[:5]))
        after = idx.search(x[100], k=10)
        assert len(after) == 10 and not set(after.ids) & set(before.ids[:5])
        ex = idx.search(x[100], k=10, exact=True)
        assert not set(ex.ids) & set(before.ids[:5])
        idx.compact()
        assert idx.search(x[100], k=10).ids == after.ids


def test_min_score_and_small_indexes(built, tmp_path):
    path, x = built
    with edgevec.open(path) as idx:
        res = idx.search(x[3], k=50, min_score=0.5)
        assert len(res) < 50 and np.all(res.scores >= 0.5)
    p = str(tmp_path / "tiny.edgevec")
    with edgevec.Index.create(p, dim=128) as idx:
        assert len(idx.search(x[0], k=3)) == 0  # empty index
        idx.add(x[:2], ids=["a", "b"])
        res = idx.search(x[0], k=10)  # k larger than the index
        assert res.ids == ("a", "b")


def test_search_results_same_with_one_or_two_threads(built):
    path, x = built
    with edgevec.open(path) as idx:
        a = idx.search(x[7:12], k=10, threads=1)
        b = idx.search(x[7:12], k=10, threads=2)
        assert a.ids == b.ids


@pytest.mark.parametrize("query, k, error, words", [
    (np.ones(127), 5, edgevec.DimensionMismatch, "dimension 127"),
    (np.full(128, np.nan), 5, edgevec.InvalidInput, "NaN"),
    (np.zeros(128), 5, edgevec.InvalidInput, "all zeros"),
    (np.ones(128), 0, edgevec.InvalidInput, "positive"),
    (np.ones((2, 2, 128)), 5, edgevec.InvalidInput, "shape"),
    ("text", 5, edgevec.InvalidInput, "needs a text model"),
    ([[1, "a"]], 5, edgevec.InvalidInput, "float"),
    # one check for rows and queries: a bool query was accepted while add() refused it
    (np.ones(128, bool), 5, edgevec.InvalidInput, "dtype bool"),
])
def test_bad_queries(built, query, k, error, words):
    path, _ = built
    with edgevec.open(path) as idx:
        with pytest.raises(error, match=words):
            idx.search(query, k=k)


def test_calibrate_stores_the_rescoring_depth(built, tmp_path):
    import shutil
    path, x = built
    p = str(tmp_path / "c.edgevec")
    shutil.copyfile(path, p)
    with edgevec.open(p, writable=True) as idx:
        report = idx.calibrate(target=0.95, queries=50)
        assert report["reached"] and report["recall_by_m"][report["m"]] >= 0.95
        assert idx.info()["rescore_m"] == report["m"]
        with pytest.raises(edgevec.InvalidInput, match="target"):
            idx.calibrate(target=1.5)
        # regression: queries=0 measured recall 1.0 over no queries and stored m=1
        for bad, words in (({"queries": 0}, "queries"), ({"k": -1}, "k must"),
                           ({"sample_rows": 2.5}, "sample_rows"), ({"seed": -3}, "seed"),
                           ({"target": "high"}, "target"), ({"queries": True}, "queries")):
            with pytest.raises(edgevec.InvalidInput, match=words):
                idx.calibrate(**bad)
        assert idx.info()["rescore_m"] == report["m"]  # nothing stored by a refused call
    with edgevec.open(p) as idx:
        assert idx.info()["rescore_m"] == report["m"]
        with pytest.raises(edgevec.ReadOnlyError):
            idx.calibrate()


@pytest.mark.parametrize("store_f16", [False, True])
def test_a_batch_through_the_batch_kernel_equals_one_query_at_a_time(tmp_path, store_f16):
    """Index.search(batch) runs the Hamming stage of all queries in one pass of the batch
    kernel (it looped over single-query scans, so the batch kernel had no caller); every
    query must get the same rows and scores as when searched alone."""
    from test_funnel_recall import embedding_like
    x = embedding_like(3000, seed=4)
    with edgevec.Index.create(tmp_path / "b.edgevec", dim=x.shape[1], store_f16=store_f16) as idx:
        for a in range(0, 3000, 1000):  # three segments
            idx.add(x[a:a + 1000], metadata=[{"odd": i % 2} for i in range(a, a + 1000)])
        idx.delete(list(range(0, 3000, 7)))
        q = x[5:17] + 0.05 * np.random.default_rng(1).normal(size=(12, x.shape[1]))
        for kwargs in ({}, {"filter": {"odd": 1}}, {"m": 3, "min_score": 0.5}):
            batch = idx.search(q, k=7, **kwargs)
            assert len(batch) == 12
            for i, one in enumerate(batch):
                assert one == idx.search(q[i], k=7, **kwargs), (kwargs, i)


def test_batch_results_are_array_shaped_with_counts(built):
    """BatchResults hold scores float32[nq, k] and rows int64[nq, k] padded past each
    query's count (NaN, -1), like usearch's BatchMatches; ids, texts and metadata are
    one tuple per query; batch[i] is query i's Results."""
    path, x = built
    with edgevec.open(path) as idx:
        q = x[:5]
        batch = idx.search(q, k=4)
        assert batch.scores.shape == (5, 4) and batch.scores.dtype == np.float32
        assert batch.rows.shape == (5, 4) and batch.rows.dtype == np.int64
        assert batch.counts.tolist() == [4] * 5 and len(batch.ids) == 5
        cut = idx.search(q, k=4, min_score=float(np.median(batch.scores)))
        assert cut.counts.tolist() == (batch.scores >= np.median(batch.scores)).sum(1).tolist()
        for i, one in enumerate(cut):
            n = int(cut.counts[i])
            assert len(one) == n == len(cut.ids[i]) and one.ids == batch[i].ids[:n]
            assert np.isnan(cut.scores[i, n:]).all() and (cut.rows[i, n:] == -1).all()
        assert not batch.scores.flags.writeable and batch == idx.search(q, k=4)
        assert [r.to_list() for r in batch] == batch.to_list()
        empty = idx.search(q[:0], k=4)
        assert len(empty) == 0 and empty.scores.shape[0] == 0 and empty.to_list() == []


def test_m_is_measured_again_when_the_index_grows_4x(tmp_path):
    """Regression: m was chosen once, on the first batch of >= 1,000 rows, and never
    again as the index grew. It is measured again, on a sample of every live row, when a
    batch leaves the index RECALIBRATE_GROWTH times the size of the last measurement."""
    from test_funnel_recall import embedding_like
    from edgevec.calibration import RECALIBRATE_GROWTH
    x = embedding_like(4600, seed=9)
    with edgevec.Index.create(tmp_path / "g.edgevec", dim=x.shape[1]) as idx:
        idx.add(x[:900])
        assert idx.info()["rescore_m"] is None  # too few rows to measure
        idx.add(x[900:1100])
        first = idx._s.meta
        assert first["rescore_m"] is not None and first["rescore_rows"] == 1100
        idx.add(x[1100:4000])  # 4000 < 4 * 1100: kept
        assert idx._s.meta["rescore_rows"] == 1100
        idx.delete(list(range(100)))
        idx.add(x[4000:4600])  # 4500 live rows >= 4 * 1100: measured again
        assert RECALIBRATE_GROWTH == 4 and idx._s.meta["rescore_rows"] == 4500
        assert idx._s.meta["rescore_m"] >= 1
        report = idx.calibrate(queries=50)
        assert idx._s.meta["rescore_rows"] == 4500 and idx.info()["rescore_m"] == report["m"]
