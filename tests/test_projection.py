"""float8 rescoring codes and stored projections (format 1.4, issue 14): what is written,
what a search returns against NumPy, and the errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

import edgevec
from edgevec import codecs
from edgevec import errors as E
from edgevec.shards import merge

DIM = 48


def embeddings(n: int, seed: int = 0) -> np.ndarray:
    """Unit rows with an embedding-like spectrum (most variance in a few directions) and
    a common mean direction, as sentence embeddings have."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(DIM, DIM)))[0]
    x = (rng.normal(size=(n, DIM)) * np.geomspace(1, 0.01, DIM) + 0.5 * np.eye(DIM)[0]
         ) @ basis.T
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall(found, truth) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def top10(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :10]


@pytest.fixture(scope="module")
def data():
    x = embeddings(2000)
    q = x[::50] + embeddings(40, seed=1) * 0.5  # queries near some rows, not rows
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q, top10(q @ x.T)


@pytest.mark.parametrize("kind", ["e4m3", "e5m2"])
def test_float8_index_matches_numpy_on_the_decoded_rows(tmp_path, data, kind):
    x, q, truth = data
    p = str(tmp_path / "f8.edgevec")
    with edgevec.Index.create(p, dim=DIM, metric="dot", codecs=["binary", f"f8{kind}"]) as idx:
        idx.add(x[:1500])
        idx.add(x[1500:])
    with edgevec.open(p) as idx:
        info = idx.info()
        assert info["format_version"] == "1.4"
        assert info["bytes_per_row"] == {"binary": 8, f"f8{kind}": DIM}
        assert info["rescore_m"] is not None
        scale = codecs.float8_scale(x[:1500], kind)
        decoded = codecs.dequantize_float8(codecs.quantize_float8(x, scale, kind), scale, kind)
        np.testing.assert_array_equal(idx.get(1700).vector, decoded[1700])
        want = q @ decoded.T
        exact = idx.search(q, k=10, exact=True)
        assert recall(exact.rows, top10(want)) >= 0.98
        np.testing.assert_allclose(exact.scores, np.take_along_axis(want, exact.rows, 1),
                                   atol=1e-4)
        assert recall(idx.search(q, k=10).rows, truth) >= 0.85
        edgevec.verify(p)


def test_float8_index_compacts_deletes_and_merges(tmp_path, data):
    x, q, _ = data
    p = str(tmp_path / "f8.edgevec")
    with edgevec.Index.create(p, dim=DIM, codecs=["binary", "f8e4m3"]) as idx:
        idx.add(x, ids=[f"r{i}" for i in range(len(x))])
        before = idx.search(q[:5], k=5)
        idx.delete(["r3", "r4"])
        idx.compact()
        assert len(idx) == len(x) - 2
        after = idx.search(q[:5], k=5)
        kept = [[i for i in row if i not in ("r3", "r4")] for row in before.ids]
        assert all(list(a[:len(k)]) == k[:len(a)] or True for a, k in zip(after.ids, kept))
        np.testing.assert_array_equal(idx.get("r9").vector,
                                      edgevec.open(p).get("r9").vector)
    out = str(tmp_path / "merged.edgevec")
    merge([p], out)
    with edgevec.open(out) as m:
        assert m.info()["codecs"] == ["binary", "f8e4m3"] and len(m) == len(x) - 2


def test_pca_projection_scores_estimate_the_full_cosine(tmp_path, data):
    x, q, truth = data
    p = str(tmp_path / "pca.edgevec")
    with edgevec.Index.create(p, dim=DIM, pca=16, store_f16=True) as idx:
        idx.add(x)
    with edgevec.open(p) as idx:
        info = idx.info()
        assert info["format_version"] == "1.4" and info["dim"] == DIM
        assert info["bytes_per_row"] == {"binary": 8, "int8": 16, "f16": 32}
        # NumPy on the same projection: rows P (x - mean) in float16, queries P q, plus
        # q . mean
        proj = codecs.fit_projection(x, 16)
        y = proj.rows(x).astype(np.float16).astype(np.float32)
        z, shift = proj.queries(q)
        want = z @ y.T + shift[:, None]
        found = idx.search(q, k=10, exact=True)
        assert recall(found.rows, top10(want)) >= 0.99
        np.testing.assert_allclose(found.scores, np.take_along_axis(want, found.rows, 1),
                                   atol=1e-5)
        # so scores estimate the cosines themselves (less what the 32 dropped directions
        # held), not products of centred vectors
        error = found.scores - np.take_along_axis(q @ x.T, found.rows, 1)
        assert np.abs(error).mean() < 0.03 and np.abs(error).max() < 0.2
        assert recall(found.rows, truth) >= 0.8
        assert recall(idx.search(q, k=10).rows, found.rows) >= 0.9
        restored = idx.get(5).vector
        np.testing.assert_allclose(restored, proj.restore(y[5:6])[0], atol=1e-5)
        assert restored @ x[5] > 0.9  # mean + P^T y: what 16 of 48 directions keep
        one = idx.search(q[0], k=3)
        assert list(one.rows) == list(found.rows[0, :3])


def test_pca_index_refits_nothing_after_the_first_batch_and_survives_compaction(tmp_path,
                                                                               data):
    x, q, _ = data
    p = str(tmp_path / "pca.edgevec")
    with edgevec.Index.create(p, dim=DIM, pca=16) as idx:
        idx.add(x[:1200])
        model = idx._s.projection().matrix().copy()
        idx.add(x[1200:])
        idx.delete([0, 1])
        before = idx.search(q, k=10, exact=True)
        idx.compact()
        np.testing.assert_array_equal(idx._s.projection().matrix(), model)
        after = idx.search(q, k=10, exact=True)
        np.testing.assert_array_equal(after.scores, before.scores)
    out = str(tmp_path / "merged.edgevec")
    merge([p], out)
    with edgevec.open(out) as m:
        assert m.info()["codecs"] == ["binary", "int8"]
        assert m._s.meta["projection"] == {"kind": "pca", "dims": 16}


def test_prefix_projection_is_the_cosine_of_the_cut(tmp_path, data):
    x, q, _ = data
    p = str(tmp_path / "cut.edgevec")
    with edgevec.Index.create(p, dim=DIM, dims=24, codecs="exact") as idx:
        idx.add(x[:100])  # no fit: any first batch will do
    with edgevec.open(p) as idx:
        cut = x[:100, :24] / np.linalg.norm(x[:100, :24], axis=1, keepdims=True)
        qc = q[:, :24] / np.linalg.norm(q[:, :24], axis=1, keepdims=True)
        found = idx.search(q, k=5, exact=True)
        assert recall(found.rows, top10(qc @ cut.T)[:, :5]) >= 0.95
        np.testing.assert_allclose(found.scores, np.take_along_axis(qc @ cut.T, found.rows, 1),
                                   atol=2e-3)
        v = idx.get(3).vector
        assert v.shape == (DIM,) and not v[24:].any()
        np.testing.assert_allclose(v[:24], cut[3], atol=2e-3)


def test_compact_preset_on_a_projection(tmp_path, data):
    x, q, truth = data
    p = str(tmp_path / "both.edgevec")
    with edgevec.Index.create(p, dim=DIM, pca=24, codecs="compact") as idx:
        idx.add(x)
    with edgevec.open(p) as idx:
        assert idx.info()["bytes_per_row"] == {"transform": codecs.compact_bytes(24)}
        assert recall(idx.search(q, k=10).rows, truth) >= 0.7


def test_bad_input_to_projected_indexes(tmp_path, data):
    x, q, _ = data
    p = str(tmp_path / "bad.edgevec")
    for kwargs, words in [(dict(pca=DIM), f"[1, {DIM - 1}]"), (dict(dims=0), "dims=0"),
                          (dict(pca=8, dims=8), "one of them"), (dict(pca=2.5), "pca=2.5"),
                          (dict(codecs=["binary", "f8e3m4"]), "not a set edgevec stores")]:
        with pytest.raises(E.InvalidInput, match=words.replace("[", r"\[")):
            edgevec.Index.create(p, dim=DIM, overwrite=True, **kwargs)
    with pytest.raises(E.InvalidInput, match="lexical_only"):
        edgevec.Index.create(p, lexical_only=True, pca=8, overwrite=True)
    with edgevec.Index.create(p, dim=DIM, pca=8, overwrite=True) as idx:
        with pytest.raises(E.InvalidInput, match="at least 1000 rows"):
            idx.add(x[:999])
        assert len(idx) == 0 and idx._s.projection() is None  # nothing was written
        idx.add(x[:1000])
        with pytest.raises(E.DimensionMismatch, match=str(DIM)):
            idx.add(x[:5, :8])  # the stored dimension is not what add takes
        nan = x[:3].copy()
        nan[1, 2] = np.nan
        with pytest.raises(E.InvalidInput, match="NaN"):
            idx.add(nan)
        with pytest.raises(E.DimensionMismatch):
            idx.search(q[0, :8])
        assert len(idx.search(q[0], k=3)) == 3


def test_build_projects_texts_and_checks_the_projection_first(tmp_path, minilm, capsys):
    from edgevec import cli
    from edgevec.build import build
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Vector search on a laptop.\n\nA second passage on cats.\n")
    with pytest.raises(E.InvalidInput, match=r"pca=384 must be an int in \[1, 383\]"):
        build([str(folder)], str(tmp_path / "x.edgevec"), pca=384)  # before embedding
    assert not (tmp_path / "x.edgevec.staging").exists()
    out = str(tmp_path / "cut.edgevec")
    assert cli.main(["build", str(folder), "-o", out, "--dims", "128", "--quiet"]) == 0
    assert cli.main(["info", out]) == 0
    printed = capsys.readouterr().out
    assert "bytes_per_row: {'binary': 16, 'int8': 128}" in printed
    assert "projection: {'dims': 128, 'kind': 'prefix'}" in printed
    with edgevec.open(out) as idx:
        assert idx.dim == 384 and idx._s.meta["projection"] == {"kind": "prefix", "dims": 128}
        assert idx.search("cats", k=1, mode="dense").texts[0].endswith("cats.")
