"""Codec presets (`Index.create(codecs=...)`) and the compact index: one transform code per
row, fitted on the first batch, scanned through per-query tables (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

import edgevec
from edgevec import codecs
from edgevec.kernels import reference as ref
from edgevec.validate import normalise


def _rows(n: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    """Vectors with a decaying spectrum in a random basis (as embeddings have)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    x = (rng.normal(size=(n, dim)) * np.geomspace(2, 0.05, dim)) @ basis
    return (x + 0.3).astype(np.float32)


@pytest.fixture
def compact(tmp_path):
    x = _rows(3000)
    path = str(tmp_path / "compact.edgevec")
    with edgevec.Index.create(path, dim=48, codecs="compact") as idx:
        idx.add(x[:2000], metadata=[{"g": i % 3} for i in range(2000)])
        idx.add(x[2000:], metadata=[{"g": i % 3} for i in range(2000, 3000)])
    return path, x


def _expected(path: str, x: np.ndarray, queries: np.ndarray, k: int, allow=None):
    """The scan done by hand: the rows encoded with the stored code, scored by the
    reference table sums plus each query's offset."""
    with edgevec.open(path) as idx:
        code = idx._s.transform_code()
    packed = codecs.transform_pack(codecs.transform_encode(normalise(x), code), code)
    qn = normalise(queries)
    lut, offset = codecs.transform_lut(qn, code)
    out = []
    for i in range(len(queries)):
        s, rows = ref.lut_topk(packed, lut[i], k, allow)
        out.append((rows.tolist(), (s.astype(np.float64) + offset[i]).astype(np.float32)))
    return out


def test_compact_search_is_the_table_scan_of_the_stored_codes(compact):
    path, x = compact
    q = _rows(5, seed=9)
    with edgevec.open(path) as idx:
        info = idx.info()
        assert info["codecs"] == ["transform"] and info["format_version"] == "1.3"
        assert info["bytes_per_row"] == {"transform": codecs.compact_bytes(48)} == \
            {"transform": 14}
        batch = idx.search(q, k=10)
        for i, (rows, scores) in enumerate(_expected(path, x, q, 10)):
            assert list(batch[i].ids) == rows  # auto ids are the rows here
            np.testing.assert_array_equal(np.asarray(batch[i].scores, np.float32), scores)
            assert list(idx.search(q[i], k=10).ids) == rows  # alone = in a batch
        allow = np.arange(3000) % 3 == 1
        got = idx.search(q, k=7, filter={"g": 1})
        for i, (rows, _) in enumerate(_expected(path, x, q, 7, allow)):
            assert list(got[i].ids) == rows
        assert list(idx.search(q[0], k=10, exact=True).ids) == list(batch[0].ids)


def test_compact_quality_deletes_compaction_and_get(compact):
    path, x = compact
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    q = _rows(50, seed=3)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    truth = np.argsort(-(qn @ xn.T), axis=1, kind="stable")[:, :10]
    with edgevec.open(path, writable=True) as idx:
        found = idx.search(q, k=10)
        recall = np.mean([len(set(found[i].ids) & set(truth[i].tolist())) / 10
                          for i in range(50)])
        assert recall > 0.7  # 14 bytes for 48 dims; the real figures are in bench/
        rec = idx.get(7)  # decoded from the code: close to the row
        assert float(rec.vector @ xn[7]) > 0.95
        before = idx.search(q, k=10)
        idx.delete([int(before[0].ids[0])])
        after = idx.search(q[0], k=10)
        assert before[0].ids[0] not in after.ids and list(after.ids[:9]) == list(before[0].ids[1:])
        kept = idx.search(q, k=10)
        idx.compact()
        assert [list(r.ids) for r in idx.search(q, k=10)] == [list(r.ids) for r in kept]
        assert len(idx) == 2999 and idx.verify()["ok"]
        idx.add(x[:5] * 2, ids=[5000, 5001, 5002, 5003, 5004])  # later batches: same code
        assert idx.search(x[2], k=1).ids[0] in (2, 5002)
    with edgevec.open(path) as idx:
        assert idx.info()["codecs"] == ["transform"]


def test_compact_first_batch_too_small_and_nothing_written(tmp_path):
    path = str(tmp_path / "c.edgevec")
    with edgevec.Index.create(path, dim=48, codecs="compact") as idx:
        with pytest.raises(edgevec.InvalidInput, match=r"at least 1000 rows \(got 999\)"):
            idx.add(_rows(999))
        assert len(idx) == 0 and idx.info()["stored_rows"] == 0
        with pytest.raises(edgevec.DimensionMismatch):
            idx.add(_rows(2000, dim=47))
        bad = _rows(2000)
        bad[17, 3] = np.nan
        with pytest.raises(edgevec.InvalidInput, match=r"\[17\]"):
            idx.add(bad)
        with pytest.raises(edgevec.InvalidInput, match="compact index"):
            idx.calibrate()
        assert idx.search(_rows(1)[0], k=3).ids == ()
        idx.add(_rows(1000))
        with pytest.raises(edgevec.DimensionMismatch):
            idx.search(np.ones(47, np.float32))


def test_presets_and_explicit_code_sets(tmp_path):
    p = str(tmp_path / "a.edgevec")
    sizes = {}
    for spec, want in (("balanced", ["binary", "int8"]), (None, ["binary", "int8"]),
                       ("exact", ["binary", "int8", "f16"]),
                       (["binary", "int8", "f16"], ["binary", "int8", "f16"]),
                       ("compact", ["transform"])):
        with edgevec.Index.create(p, dim=384, codecs=spec, overwrite=True) as idx:
            assert idx.info()["codecs"] == want
            idx.add(_rows(1000, dim=384))
            sizes[str(spec)] = idx.info()["bytes_per_row"]
    assert sizes["balanced"] == {"binary": 48, "int8": 384}
    assert sizes["exact"] == {"binary": 48, "int8": 384, "f16": 768}
    assert sizes["compact"] == {"transform": 110}  # a quarter of balanced's 432
    with edgevec.Index.create(p, dim=8, store_f16=True, overwrite=True) as idx:
        assert idx.info()["codecs"] == ["binary", "int8", "f16"]
    for bad, match in (("tiny", "not a preset"), (["int8"], "not a set"),
                       (["transform", "f16"], "not a set"), (3, "codecs")):
        with pytest.raises(edgevec.InvalidInput, match=match):
            edgevec.Index.create(p, dim=8, codecs=bad, overwrite=True)
    with pytest.raises(edgevec.InvalidInput, match="store_f16"):
        edgevec.Index.create(p, dim=8, codecs="compact", store_f16=True, overwrite=True)
    with pytest.raises(edgevec.InvalidInput, match="codecs="):
        edgevec.Index.create(p, lexical_only=True, codecs="compact", overwrite=True)


def test_balanced_files_are_still_format_1_1(tmp_path):
    p = str(tmp_path / "b.edgevec")
    with edgevec.Index.create(p, dim=8) as idx:
        idx.add(_rows(20, dim=8))
    assert open(p, "rb").read(12)[8:12] == b"\x01\x00\x01\x00"  # major 1, minor 1
    assert edgevec.info(p)["format_version"] == "1.1"


def test_compact_shards_search_as_one_and_merge_compact(tmp_path):
    x = _rows(4000)
    paths = []
    for i in range(2):
        p = str(tmp_path / f"s{i}.edgevec")
        with edgevec.Index.create(p, dim=48, codecs="compact") as idx:
            idx.add(x[2000 * i:2000 * (i + 1)], ids=list(range(2000 * i, 2000 * (i + 1))))
        paths.append(p)
    q = _rows(3, seed=4)
    with edgevec.open_many(paths) as many:
        got = many.search(q, k=10)
        with edgevec.open(paths[0]) as a, edgevec.open(paths[1]) as b:
            for i in range(3):  # the merge of each file's own list, by score then row
                both = sorted([(-s, r) for s, r in zip(a.search(q[i], k=10).scores,
                                                      a.search(q[i], k=10).ids)]
                              + [(-s, r) for s, r in zip(b.search(q[i], k=10).scores,
                                                        b.search(q[i], k=10).ids)])
                assert list(got[i].ids) == [r for _, r in both[:10]]
    out = str(tmp_path / "merged.edgevec")
    edgevec.merge(paths, out)
    info = edgevec.info(out)
    assert info["codecs"] == ["transform"] and info["rows"] == 4000


def test_build_with_codecs_checks_them_first_and_says_what_compact_needs(tmp_path, minilm,
                                                                         capsys):
    from edgevec import cli
    from edgevec.build import build
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Some text about vector search.\n\nAnd a second passage.\n")
    with pytest.raises(edgevec.InvalidInput, match="not a preset"):
        build([str(folder)], str(tmp_path / "x.edgevec"), codecs="tiny")  # before embedding
    with pytest.raises(edgevec.InvalidInput, match="at least 1000 rows"):
        build([str(folder)], str(tmp_path / "c.edgevec"), codecs="compact", quiet=True)
    assert not (tmp_path / "c.edgevec").exists()
    assert cli.main(["build", str(folder), "-o", str(tmp_path / "e.edgevec"), "--codecs",
                     "exact", "--quiet"]) == 0
    assert edgevec.info(str(tmp_path / "e.edgevec"))["codecs"] == ["binary", "int8", "f16"]
    assert cli.main(["info", str(tmp_path / "e.edgevec")]) == 0
    assert "bytes_per_row: {'binary': 48, 'int8': 384, 'f16': 768}" in capsys.readouterr().out
