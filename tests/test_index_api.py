"""The Index API over the file format: round trips and the treatment of bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

import edgevec
from edgevec import codecs
from helpers import batch_ids, batch_vectors


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "t.edgevec")


def test_import_has_no_side_effects():
    import subprocess
    import sys
    code = ("import sys, threading; n=threading.active_count(); import edgevec; "
            "assert 'numba' not in sys.modules, 'numba imported'; "
            "assert 'onnxruntime' not in sys.modules; "
            "assert threading.active_count() == n; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_add_get_delete_reopen(path):
    x = batch_vectors(0, 20, 72)
    with edgevec.Index.create(path, dim=72, store_f16=True) as idx:
        ids = idx.add(x, ids=batch_ids(0, 20), texts=[f"t{i}" for i in range(20)],
                      metadata=[{"i": i, "even": i % 2 == 0} for i in range(20)])
        assert ids == batch_ids(0, 20) and len(idx) == 20
        assert idx.delete(["b0-r3", "b0-r4"]) == 2
        assert len(idx) == 18 and "b0-r3" not in idx and "b0-r5" in idx
        assert idx.contains(["b0-r5", "b0-r3", "nope", "b0-r19"]).tolist() == [
            True, False, False, True]  # `in` for many ids at once
        with pytest.raises(edgevec.IdTypeMismatch):
            idx.contains([5])
    with edgevec.open(path) as idx:
        assert len(idx) == 18 and not idx.writable
        rec = idx.get("b0-r7")
        assert rec.text == "t7" and rec.metadata == {"i": 7, "even": False}
        unit = x[7] / np.linalg.norm(x[7])
        np.testing.assert_allclose(rec.vector, unit, atol=2e-3)
        with pytest.raises(edgevec.UnknownId):
            idx.get("b0-r3")
        with pytest.raises(edgevec.ReadOnlyError):
            idx.add(x[:1], ids=["new"])


def test_auto_ids_continue_after_explicit_ints(path):
    with edgevec.Index.create(path, dim=8) as idx:
        assert idx.add(batch_vectors(1, 3, 8)) == [0, 1, 2]
        assert idx.add(batch_vectors(2, 2, 8), ids=[10, 20]) == [10, 20]
        assert idx.add(batch_vectors(3, 2, 8)) == [21, 22]


def test_deleted_id_can_be_added_again(path):
    with edgevec.Index.create(path, dim=8) as idx:
        idx.add(batch_vectors(1, 3, 8), ids=["a", "b", "c"], texts=["1", "2", "3"])
        idx.delete(["b"])
        idx.add(batch_vectors(2, 1, 8), ids=["b"], texts=["new b"])
        assert idx.get("b").text == "new b" and len(idx) == 3
        idx.compact()
        assert idx.get("b").text == "new b" and idx.ids() == ["a", "c", "b"]


def test_compact_shrinks_and_keeps_rows(path):
    with edgevec.Index.create(path, dim=64) as idx:
        for b in range(5):
            idx.add(batch_vectors(b, 100, 64), ids=batch_ids(b, 100),
                    metadata=[{"b": b, "s": str(i % 3)} for i in range(100)])
        idx.delete(batch_ids(1, 100) + batch_ids(3, 100)[:50])
        before = idx.ids()
        sizes = idx.compact()
        assert sizes["bytes_after"] < sizes["bytes_before"]
        assert idx.ids() == before and len(idx) == 350
        assert idx.info()["segments"] == 1 and idx.info()["deleted"] == 0
        assert idx.get("b3-r77").metadata == {"b": 3, "s": "2"}
        idx.verify()


def test_quantisation_matches_codecs(path):
    x = batch_vectors(4, 300, 96)
    with edgevec.Index.create(path, dim=96, metric="dot") as idx:
        idx.add(x)
        s = idx._s
        np.testing.assert_array_equal(s.segment_array("binary", 0), codecs.sign_bits(x))
        cal = s.calibration()
        np.testing.assert_array_equal(s.segment_array("int8", 0), codecs.quantize_int8(x, cal))


def test_views_are_zero_copy_and_read_only(path):
    with edgevec.Index.create(path, dim=64) as idx:
        idx.add(batch_vectors(0, 10, 64))
    idx = edgevec.open(path)
    codes = idx._s.segment_array("int8", 0)
    assert not codes.flags.writeable and not codes.flags.owndata
    with pytest.raises(ValueError):
        codes[0, 0] = 1
    idx.close()
    assert codes.shape == (10, 64)  # an array handed out survives close()


# --- bad input: a clear error, nothing written ------------------------------------------------


def _unchanged(path, fn):
    before = open(path, "rb").read()
    fn()
    assert open(path, "rb").read() == before


@pytest.mark.parametrize("vectors, error, words", [
    (np.zeros((2, 9), np.float32), edgevec.DimensionMismatch, "dimension 9"),
    (np.full((2, 8), np.nan, np.float32), edgevec.InvalidInput, "NaN"),
    (np.array([[np.inf] * 8]), edgevec.InvalidInput, "infinity"),
    (np.zeros((1, 8), np.float32), edgevec.InvalidInput, "all zeros"),
    (np.zeros((2, 2, 8)), edgevec.InvalidInput, "shape"),
    (np.array([["a"] * 8]), edgevec.InvalidInput, "dtype"),
    (np.ones((2, 8), bool), edgevec.InvalidInput, "dtype bool"),  # queries refuse it too
])
def test_bad_vectors(path, vectors, error, words):
    with edgevec.Index.create(path, dim=8) as idx:
        idx.add(batch_vectors(0, 2, 8), ids=[1, 2])
        with pytest.raises(error, match=words):
            _unchanged(path, lambda: idx.add(vectors))
        assert len(idx) == 2


@pytest.mark.parametrize("ids, error, words", [
    (["a", "a"], edgevec.DuplicateId, "twice"),
    (["x", 1], edgevec.IdTypeMismatch, "mix"),
    ([True, False], edgevec.InvalidInput, "bool"),
    ([1.5, 2.5], edgevec.InvalidInput, "float"),
    (["a"], edgevec.InvalidInput, "1 ids for 2"),
    ("ab", edgevec.InvalidInput, "single str"),
    ([2**64, 1], edgevec.InvalidInput, "int64"),
])
def test_bad_ids(path, ids, error, words):
    with edgevec.Index.create(path, dim=8) as idx:
        with pytest.raises(error, match=words):
            idx.add(batch_vectors(0, 2, 8), ids=ids)
        assert len(idx) == 0


def test_colliding_ids_are_rejected_and_nothing_is_written(path):
    with edgevec.Index.create(path, dim=8) as idx:
        idx.add(batch_vectors(0, 3, 8), ids=["a", "b", "c"])
        with pytest.raises(edgevec.DuplicateId, match="'b' is already"):
            _unchanged(path, lambda: idx.add(batch_vectors(1, 2, 8), ids=["z", "b"]))
        with pytest.raises(edgevec.IdTypeMismatch):
            idx.add(batch_vectors(1, 1, 8), ids=[5])
        with pytest.raises(edgevec.UnknownId, match="nothing was deleted"):
            _unchanged(path, lambda: idx.delete(["a", "nope"]))
        assert len(idx) == 3


def test_add_with_replace_is_one_commit_that_upserts(path):
    """replace=True: a live id's row is tombstoned in the commit that adds its new row;
    new ids are added, the rest stays; one generation per call."""
    with edgevec.Index.create(path, dim=8, lexical=True) as idx:
        idx.add(batch_vectors(0, 3, 8), ids=["a", "b", "c"], texts=["one", "two", "three"],
                metadata=[{"n": 1}, {"n": 2}, {"n": 3}])
        generation = idx.generation
        new = batch_vectors(7, 2, 8)
        assert idx.add(new, ids=["b", "d"], texts=["two again", "four"],
                       metadata=[{"n": 20}, {"n": 4}], replace=True) == ["b", "d"]
        assert idx.generation == generation + 1
        assert sorted(idx.ids()) == ["a", "b", "c", "d"] and len(idx) == 4
        b = idx.get("b")
        assert b.text == "two again" and b.metadata == {"n": 20}
        cosine = b.vector @ new[0] / np.linalg.norm(b.vector) / np.linalg.norm(new[0])
        assert cosine > 0.95  # the new vector (int8: clipped to the first batch's range)
        assert idx.search("two", k=4, mode="lexical").ids[0] == "b"  # the new text's postings
        assert list(idx.search(new[0], k=1, filter={"n": 2}).ids) == []  # old row gone
        with pytest.raises(edgevec.DuplicateId, match="replace=True"):
            idx.add(batch_vectors(8, 1, 8), ids=["a"], texts=["x"])
        with pytest.raises(edgevec.DuplicateId, match="twice"):  # within a batch: still an error
            idx.add(batch_vectors(8, 2, 8), ids=["a", "a"], texts=["x", "y"], replace=True)
    edgevec.verify(path)
    with edgevec.open(path) as idx:
        assert idx.info()["deleted"] == 1


def test_ids_with_a_filter_are_the_live_matching_rows(path):
    with edgevec.Index.create(path, dim=8) as idx:
        idx.add(batch_vectors(0, 3, 8), ids=["a", "b", "c"],
                metadata=[{"g": "x"}, {"g": "y"}, {"g": "x"}])
        idx.add(batch_vectors(1, 2, 8), ids=["d", "e"], metadata=[{"g": "x"}, None])
        idx.delete(["c"])
        assert idx.ids(filter={"g": "x"}) == ["a", "d"]
        assert idx.ids(filter={"g": {"$ne": "x"}}) == ["b", "e"]
        assert idx.ids(filter={"g": "z"}) == [] and idx.ids() == ["a", "b", "d", "e"]
        with pytest.raises(edgevec.InvalidInput, match="nope"):
            idx.ids(filter={"nope": 1})


def test_bad_texts_and_metadata(path):
    with edgevec.Index.create(path, dim=8) as idx:
        x = batch_vectors(0, 2, 8)
        with pytest.raises(edgevec.InvalidInput, match=r"texts\[1\] is int"):
            idx.add(x, texts=["a", 3])
        with pytest.raises(edgevec.InvalidInput, match="not JSON-serialisable"):
            idx.add(x, metadata=[{"a": object()}, None])
        with pytest.raises(edgevec.InvalidInput, match="mixes"):
            idx.add(x, metadata=[{"a": "s"}, {"a": 1}])
        with pytest.raises(edgevec.InvalidInput, match="NaN"):
            idx.add(x, metadata=[{"a": float("nan")}, None])
        idx.add(x, metadata=[{"a": 1}, {"a": 2}])
        with pytest.raises(edgevec.InvalidInput, match="holds int values"):
            idx.add(batch_vectors(1, 1, 8), metadata=[{"a": "text"}])
        assert len(idx) == 2


def test_bad_paths(tmp_path):
    with pytest.raises(edgevec.IndexNotFound, match="no such file"):
        edgevec.open(tmp_path / "missing.edgevec")
    with pytest.raises(edgevec.NotAnEdgevecFile, match="directory"):
        edgevec.open(tmp_path)
    other = tmp_path / "data.npy"
    np.save(other, np.zeros(10))
    with pytest.raises(edgevec.NotAnEdgevecFile, match="not an edgevec file"):
        edgevec.open(other)
    with pytest.raises(edgevec.NotAnEdgevecFile):
        edgevec.open(other, writable=True)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(edgevec.NotAnEdgevecFile):
        edgevec.open(empty)
    p = tmp_path / "x.edgevec"
    edgevec.Index.create(p, dim=4).close()
    with pytest.raises(edgevec.IndexExists, match="overwrite=True"):
        edgevec.Index.create(p, dim=4)
    with pytest.raises(edgevec.IndexExists, match="directory"):
        edgevec.Index.create(tmp_path, dim=4)
    with pytest.raises(edgevec.InvalidInput, match="dim"):
        edgevec.Index.create(tmp_path / "y.edgevec", dim=0)
    assert not os.path.exists(tmp_path / "y.edgevec")


def test_closed_index_says_so(path):
    idx = edgevec.Index.create(path, dim=4)
    idx.close()
    with pytest.raises(edgevec.IndexStateError, match="closed"):
        len(idx)
    idx.close()  # closing twice is fine


def test_numeric_filters_compare_exactly(path):
    """Regression: {"year": {"$in": [2019.5]}} matched 2019 (the list was cast to int64)
    while {"year": 2019.5} matched nothing, and {"$in": [2**70]} raised OverflowError. A
    value either compares exactly or is refused with a message."""
    years = [2018, 2019, 2020]
    with edgevec.Index.create(path, dim=8) as idx:
        idx.add(batch_vectors(0, 3, 8), ids=["a", "b", "c"],
                metadata=[{"year": y, "score": y / 10} for y in years])
        q = batch_vectors(1, 1, 8)[0]

        def ids(flt):
            return set(idx.search(q, k=10, filter=flt).ids)
        assert ids({"year": {"$in": [2019.5]}}) == set() == ids({"year": 2019.5})
        assert ids({"year": {"$in": [2019.0, 2**70, -2**70]}}) == {"b"}
        assert ids({"year": {"$nin": [2**70]}}) == {"a", "b", "c"}
        assert ids({"year": {"$gt": 2**70}}) == set()
        assert ids({"year": {"$lt": 2**70}}) == {"a", "b", "c"}
        assert ids({"year": {"$gt": 2019.5}}) == {"c"}
        assert ids({"score": {"$in": [201.9]}}) == {"b"}
        with pytest.raises(edgevec.InvalidInput, match="cannot be compared exactly"):
            idx.search(q, k=10, filter={"score": 2**53 + 1})
        with pytest.raises(edgevec.InvalidInput, match="NaN matches nothing"):
            idx.search(q, k=10, filter={"score": {"$gte": float("nan")}})


def test_one_numpy_id_and_bad_id_arguments(path):
    """Regression: delete(np.int64(3)) raised TypeError ('not iterable'), delete(None) and
    delete(3.5) too, and Snapshot.locate raised IndexError: only EdgevecError leaves."""
    with edgevec.Index.create(path, dim=8) as idx:
        idx.add(batch_vectors(0, 5, 8))
        assert idx.delete(np.int64(3)) == 1 and idx.delete(np.array([1, 2])) == 2
        for bad in (None, 3.5):
            with pytest.raises(edgevec.InvalidInput, match="ids must be"):
                idx.delete(bad)
        with pytest.raises(edgevec.InvalidInput, match="outside"):
            idx._s.ids_of([99])


def test_results_compare_by_value_and_are_not_hashable(path):
    """Regression: Results == Results raised (the generated __eq__ compared arrays with
    ==) and hash() failed deep inside; now equality is by value, hashing is refused."""
    with edgevec.Index.create(path, dim=8) as idx:
        idx.add(batch_vectors(0, 20, 8), metadata=[{"n": i} for i in range(20)])
        q = batch_vectors(1, 2, 8)
        a, b = idx.search(q[0], k=5), idx.search(q[0], k=5)
        assert a == b and not (a != b) and a != idx.search(q[1], k=5)
        assert a != idx.search(q[0], k=4) and a != "not results"
        assert idx.search(q, k=3) == idx.search(q, k=3)
        for r in (a, idx.search(q, k=3)):
            with pytest.raises(TypeError, match="unhashable"):
                hash(r)
