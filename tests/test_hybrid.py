"""Lexical and hybrid search through the index file (issue: hybrid search)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import edgevec
from edgevec.fusion import RRF_K
from edgevec.lexical import Analyzer, bm25
from edgevec.storage.postings import Postings

TEXTS = ["the quick brown fox", "a lazy dog sleeps", "quick quick dog", "fox and dog",
         "nothing here", "", "中文分词 quick", "dogs and foxes"]


def _vectors(n, dim=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.fixture
def lexical_index(tmp_path):
    path = tmp_path / "lex.edgevec"
    with edgevec.Index.create(path, dim=8, lexical=True) as idx:
        idx.add(_vectors(5), ids=[f"r{i}" for i in range(5)], texts=TEXTS[:5],
                metadata=[{"n": i} for i in range(5)])
        idx.add(_vectors(3, seed=1), ids=[f"r{i}" for i in range(5, 8)], texts=TEXTS[5:],
                metadata=[{"n": i} for i in range(5, 8)])
    return path


def _bm25_ids(texts, query, k, keep=None):
    a = Analyzer(stop_words="en")
    keep = range(len(texts)) if keep is None else keep
    rows = list(keep)
    s, r = bm25.search([Postings.build([a.terms(texts[i]) for i in rows])], a.terms(query), k)
    return [f"r{rows[i]}" for i in r.tolist()], s


def test_lexical_search_over_segments_equals_bm25_over_all_rows(lexical_index):
    with edgevec.open(lexical_index) as idx:
        assert idx.info()["format_version"] == "1.1"
        edgevec.verify(lexical_index)
        res = idx.search("quick dog", k=5)  # no model: text queries are lexical
        want_ids, want_scores = _bm25_ids(TEXTS, "quick dog", 5)
        assert list(res.ids) == want_ids
        np.testing.assert_allclose(res.scores, want_scores, rtol=1e-6)
        assert res.ranks is None
        batch = idx.search(["quick dog", "fox", "zzz"], k=3, mode="lexical")
        assert list(batch[0].ids) == want_ids[:3] and batch.counts[2] == 0
        assert list(idx.search("中文", k=2).ids) == ["r6"]


def test_bm25_settings_chosen_at_create_are_stored_and_kept_by_compaction(tmp_path):
    """k1 and b are set once, at create: every search uses the file's, checked against an
    independent pure-Python BM25; compaction (also with a new analyzer) keeps them."""
    import math
    a = Analyzer(stop_words="en")
    docs = [a.terms(t) for t in TEXTS]
    avgdl = sum(map(len, docs)) / len(docs)

    def reference(query, k1, b):
        out = []
        for i, d in enumerate(docs):
            score = 0.0
            for t in set(a.terms(query)):
                df = sum(t in other for other in docs)
                if t in d:
                    tf = d.count(t)
                    score += math.log(1 + (len(docs) - df + 0.5) / (df + 0.5)) * tf / (
                        tf + k1 * (1 - b + b * len(d) / avgdl))
            if score > 0:
                out.append((-score, i))
        return [(f"r{i}", -s) for s, i in sorted(out)]

    path = tmp_path / "tuned.edgevec"
    with edgevec.Index.create(path, dim=8, lexical=True,
                              bm25=bm25.BM25(k1=2.0, b=0.2)) as idx:
        idx.add(_vectors(8), ids=[f"r{i}" for i in range(8)], texts=TEXTS)
    for step in ("create", "compact", "compact with a new analyzer"):
        with edgevec.open(path, writable=step != "create") as idx:
            if step == "compact":
                idx.compact()
            elif step != "create":
                idx.compact(lexical=Analyzer(stop_words=None))
                a = Analyzer(stop_words=None)
                docs[:] = [a.terms(t) for t in TEXTS]
                avgdl = sum(map(len, docs)) / len(docs)
            assert idx.info()["lexical"]["bm25"] == {"k1": 2.0, "b": 0.2}
            for query in ("quick dog", "the fox"):
                res = idx.search(query, k=8, mode="lexical")
                want = reference(query, 2.0, 0.2)
                assert list(res.ids) == [w[0] for w in want], (step, query)
                np.testing.assert_allclose(res.scores, [w[1] for w in want], rtol=1e-5)
    edgevec.verify(path)
    with pytest.raises(edgevec.InvalidInput, match="k1 must be a finite number"):
        edgevec.Index.create(tmp_path / "a.edgevec", dim=8, lexical=True, bm25={"k1": -1})
    with pytest.raises(edgevec.InvalidInput, match=r"b must be a finite number in \[0, 1"):
        edgevec.Index.create(tmp_path / "b.edgevec", dim=8, lexical=True,
                             bm25={"b": 1.5})
    with pytest.raises(edgevec.InvalidInput, match="k1 and b, not"):
        edgevec.Index.create(tmp_path / "c.edgevec", dim=8, lexical=True, bm25={"k": 1})
    with pytest.raises(edgevec.InvalidInput, match="needs lexical=True"):
        edgevec.Index.create(tmp_path / "d.edgevec", dim=8, bm25={"k1": 1.0})
    assert not any(os.path.exists(tmp_path / f"{c}.edgevec") for c in "abcd")


def test_your_own_vectors_with_text_search_hybrid(lexical_index):
    """search(vector, text=...): an index of vectors you embed yourself still gets hybrid
    search (the text goes to BM25); batches take one text per vector."""
    from edgevec.query import search
    v = _vectors(2, seed=4)
    with edgevec.open(lexical_index) as idx:
        single = idx.search(v[0], k=4, text="quick dog")
        assert single.ranks is not None  # hybrid by default once there is a text
        want = search(idx._s, v[0], texts=["quick dog"], mode="hybrid", k=4, single=True)
        assert single == want
        assert idx.search(v[0], k=4, text="quick dog", mode="dense") == idx.search(v[0], k=4)
        batch = idx.search(v, k=4, text=["quick dog", "fox"])
        assert batch[1] == idx.search(v[1], k=4, text="fox")
        for bad, words in (((v, "fox"), "one str per query vector"),
                           ((v, ["fox"]), "one str per query vector"),
                           (("fox", "dog"), "goes with a vector query")):
            with pytest.raises(edgevec.InvalidInput, match=words):
                idx.search(bad[0], k=2, text=bad[1])


def test_deleted_and_filtered_rows_never_come_back_and_compaction_keeps_results(
        lexical_index):
    with edgevec.open(lexical_index, writable=True) as idx:
        idx.delete(["r2"])
        res = idx.search("quick dog", k=10)
        assert "r2" not in res.ids and len(res.ids) == 4
        filtered = idx.search("quick dog", k=10, filter={"n": {"$gte": 3}})
        assert set(filtered.ids) == {"r3", "r6"}  # "dogs" is not "dog" without stemming
        before = [idx.search(q, k=10).ids for q in ("quick dog", "fox", "lazy")]
        idx.compact()
        # deleted rows left the statistics: scores change, the live rows stay
        after = [idx.search(q, k=10).ids for q in ("quick dog", "fox", "lazy")]
        assert [set(a) for a in after] == [set(b) for b in before]
        live = [i for i in range(8) if i != 2]
        assert list(after[0]) == _bm25_ids(TEXTS, "quick dog", 10, live)[0]
        edgevec.verify(lexical_index)


def test_lexical_indexes_need_texts_and_modes_need_what_they_search(lexical_index, tmp_path):
    with edgevec.open(lexical_index, writable=True) as idx:
        with pytest.raises(edgevec.InvalidInput, match="texts="):
            idx.add(_vectors(1), ids=["x"])
        with pytest.raises(edgevec.InvalidInput, match="mode='lexical' needs a text"):
            idx.search(_vectors(1)[0], mode="lexical")
        with pytest.raises(edgevec.InvalidInput, match="mode must be one of"):
            idx.search("dog", mode="fuzzy")
        with pytest.raises(edgevec.InvalidInput, match="needs a text model"):
            idx.search("dog", mode="hybrid")  # hybrid embeds the text: no model here
    with edgevec.Index.create(tmp_path / "v.edgevec", dim=8) as vec:
        vec.add(_vectors(3), texts=["a", "b", "c"])
        with pytest.raises(edgevec.InvalidInput, match="lexical postings"):
            vec.search(_vectors(1)[0], mode="lexical")


def test_format_1_0_files_still_open_and_search_dense(golden_dir):
    path = os.path.join(golden_dir, "v1.0", "str-ids.edgevec")
    with edgevec.open(path) as idx:
        assert idx.info()["format_version"] == "1.0"
        res = idx.search(idx.get("alpha").vector, k=3)
        assert res.ids[0] == "alpha"
        with pytest.raises(edgevec.InvalidInput, match="lexical postings"):
            idx.search("first", mode="lexical")


def test_compact_lexical_adds_postings_to_an_old_file(golden_dir, tmp_path):
    """Format 1.0 files have no postings: `edgevec compact FILE --lexical` rewrites one
    (crash-safely, by rename like every compaction) with postings of its stored texts."""
    import shutil

    from edgevec import cli
    path = str(tmp_path / "old.edgevec")
    shutil.copyfile(os.path.join(golden_dir, "v1.0", "str-ids.edgevec"), path)
    with edgevec.open(path) as idx:
        live_texts = {i: idx.get(i).text for i in idx.ids()}
    assert cli.main(["compact", path, "--lexical"]) == 0
    edgevec.verify(path)
    with edgevec.open(path) as idx:
        assert idx.info()["format_version"] == "1.1" and idx.info()["lexical"]
        assert idx.search("first", mode="lexical").ids == ("alpha",)
        assert idx.search("第四个", mode="lexical").ids[0] == "数据"
        assert {i: idx.get(i).text for i in idx.ids()} == live_texts
    with edgevec.open(path, writable=True) as idx:
        idx.compact(lexical=False)
        assert idx.info()["lexical"] is None and idx.info()["lexical_bytes"] == 0


def test_lexical_only_index_needs_no_model_and_no_vectors(tmp_path):
    """Index.create(lexical_only=True): dim 0, no vector sections (format 1.2), texts in
    and BM25 out, the same results as the BM25 of a vector index with the same texts."""
    path = tmp_path / "lo.edgevec"
    with edgevec.Index.create(path, lexical_only=True) as idx:
        idx.add(ids=[f"r{i}" for i in range(5)], texts=TEXTS[:5],
                metadata=[{"n": i} for i in range(5)])
        idx.add(ids=[f"r{i}" for i in range(5, 8)], texts=TEXTS[5:],
                metadata=[{"n": i} for i in range(5, 8)])
        assert idx.dim == 0 and len(idx) == 8
        want_ids, want_scores = _bm25_ids(TEXTS, "quick dog", 5)
        res = idx.search("quick dog", k=5)
        assert list(res.ids) == want_ids
        np.testing.assert_allclose(res.scores, want_scores, rtol=1e-6)
        assert idx.search(["fox", "quick dog"], k=5)[1].ids == res.ids
        assert set(idx.search("quick dog", filter={"n": {"$gte": 3}}).ids) == {"r3", "r6"}
        rec = idx.get("r3")
        assert rec.text == "fox and dog" and rec.vector.shape == (0,)
        for bad, match in ((lambda: idx.search("dog", mode="hybrid"), "lexical-only"),
                           (lambda: idx.search(_vectors(1)[0]), "lexical-only"),
                           (lambda: idx.add(_vectors(1), ids=["x"], texts=["x"]),
                            "texts= alone"),
                           (lambda: idx.add(ids=["x"]), "texts="),
                           (lambda: idx.calibrate(), "no vectors")):
            with pytest.raises(edgevec.InvalidInput, match=match):
                bad()
        idx.delete(["r2"])
        idx.compact()
        live = [i for i in range(8) if i != 2]
        assert list(idx.search("quick dog", k=10).ids) == _bm25_ids(TEXTS, "quick dog", 10,
                                                                    live)[0]
    info = edgevec.info(path)
    assert info["format_version"] == "1.2" and info["lexical_only"] and info["codecs"] == []
    assert not any(k in info["section_bytes"] for k in ("binary", "int8", "calibration"))
    edgevec.verify(path)
    with pytest.raises(edgevec.InvalidInput, match="lexical_only"):
        edgevec.Index.create(tmp_path / "x.edgevec", lexical_only=True, dim=8)
    with pytest.raises(edgevec.InvalidInput, match="lexical_only"):
        edgevec.Index.create(tmp_path / "x.edgevec", lexical_only=True, lexical=False)


def test_lexical_only_directory_rules(tmp_path):
    """A dim-0 directory must name meta.lexical and hold no vector section; files with
    vectors keep the 1.1 stamp so 1.1 readers still read them."""
    from edgevec.storage.directory import parse_directory
    from edgevec.errors import FormatError
    import json
    meta = {"dim": 0, "metric": "cosine", "id_type": None, "codecs": [], "rows": 0,
            "deleted": 0, "next_auto_id": 0, "fields": {}, "user": {},
            "lexical": {"analyzer": {}, "fingerprint": "", "bm25": {"k1": 1.2, "b": 0.75},
                        "rrf": {"k": 10, "depth": 100}}}

    def parse(m, sections=(), segments=()):
        raw = json.dumps({"meta": m, "segments": list(segments), "sections": list(sections)})
        return parse_directory(raw.encode(), path="x", dir_offset=1536,
                               committed_length=1536 + len(raw), file_minor=2)
    assert parse(meta).dim == 0
    with pytest.raises(FormatError, match="meta.lexical is null"):
        parse({**meta, "lexical": None})
    with pytest.raises(FormatError, match="must be empty"):
        parse({**meta, "codecs": ["binary", "int8"]})
    with pytest.raises(FormatError, match="a calibration section, but meta.codecs"):
        parse(meta, [{"kind": "calibration", "offset": 1536, "length": 0, "dtype": "<f4",
                      "shape": [2, 0], "crc32": 0}])
    with edgevec.Index.create(tmp_path / "v.edgevec", dim=8, lexical=True) as idx:
        idx.add(_vectors(2), texts=["a", "b"])
    assert edgevec.info(tmp_path / "v.edgevec")["format_version"] == "1.1"


def test_cli_builds_and_searches_a_lexical_only_index(tmp_path, capsys):
    """`edgevec build --lexical-only`: no model is loaded (none needs to be built), the
    file holds postings and no vectors, and search is lexical by default."""
    import json

    from edgevec import cli
    corpus = tmp_path / "docs.jsonl"
    with open(corpus, "w") as f:
        for i, text in enumerate(TEXTS):
            f.write(json.dumps({"id": f"r{i}", "text": text, "n": i}) + "\n")
        f.write("not json\n")
    out = str(tmp_path / "lo.edgevec")
    assert cli.main(["build", str(corpus), "-o", out, "--id-field", "id", "--lexical-only",
                     "--quiet"]) == 0
    assert "passages/s" in capsys.readouterr().out
    assert cli.main(["search", out, "quick dog", "-k", "5", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["results"]
    # the empty text is skipped by the ingest; the BM25 of the rest decides the order
    kept = [i for i, t in enumerate(TEXTS) if t]
    assert [r["id"] for r in found] == _bm25_ids(TEXTS, "quick dog", 5, kept)[0]
    assert found[0]["metadata"] == {"n": int(found[0]["id"][1:])}
    assert cli.main(["search", out, "dog", "--mode", "hybrid"]) == 1
    assert "lexical-only" in capsys.readouterr().err
    assert cli.main(["info", out, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["lexical_only"] and info["dim"] == 0 and info["embedder"] is None
    assert cli.main(["build", str(corpus), "-o", out, "--lexical-only"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert not [n for n in os.listdir(os.path.dirname(out)) if n.endswith(".tmp")]


def test_weighted_hybrid_and_min_score_in_every_mode(lexical_index):
    """alpha=1 keeps the dense order, alpha=0 the BM25 order; min_score cuts each mode in
    its own score (the planner is called with a vector and a text, as Index.search does
    for a text index with a model)."""
    from edgevec.query import search
    q = _vectors(1, seed=5)[0]
    with edgevec.open(lexical_index) as idx:
        s = idx._s
        dense = search(s, q, k=8, mode="dense", exact=True)
        lexical = search(s, None, texts=["quick dog"], mode="lexical", k=8, single=True)
        by_dense = search(s, q, texts=["quick dog"], mode="hybrid", alpha=1.0, k=8,
                          exact=True, single=True)
        assert by_dense.ids == dense.ids
        assert by_dense.ranks[:, 0].tolist() == list(range(1, 9))
        by_lexical = search(s, q, texts=["quick dog"], mode="hybrid", alpha=0.0, k=8,
                            exact=True, single=True)
        n = len(lexical.ids)
        assert by_lexical.ids[:n - 1] == lexical.ids[:n - 1]  # the last normalises to 0
        rrf = search(s, q, texts=["quick dog"], mode="hybrid", k=8, exact=True, single=True)
        assert rrf.scores.max() <= 2 / (RRF_K + 1) + 1e-9
        for res, kw in ((dense, {"mode": "dense"}), (lexical, {"mode": "lexical"}),
                        (rrf, {"mode": "hybrid"}), (by_lexical, {"mode": "hybrid",
                                                                 "alpha": 0.0})):
            cut = float(res.scores[2])
            got = search(s, q if kw["mode"] != "lexical" else None,
                         texts=None if kw["mode"] == "dense" else ["quick dog"], k=8,
                         exact=True, single=True, min_score=cut, **kw)
            assert got.ids == tuple(i for i, sc in zip(res.ids, res.scores) if sc >= cut)
        with pytest.raises(edgevec.InvalidInput, match="alpha weighs"):
            idx.search(q, alpha=0.5)
        with pytest.raises(edgevec.InvalidInput, match="alpha"):
            search(s, q, texts=["dog"], mode="hybrid", alpha=2.0)


def test_compaction_merges_postings_without_analysing_texts(lexical_index, monkeypatch):
    with edgevec.open(lexical_index, writable=True) as idx:
        idx.delete(["r1", "r6"])
        before = {q: idx.search(q, k=10).ids for q in ("quick dog", "fox", "中文", "lazy")}
        monkeypatch.setattr(Analyzer, "terms", lambda self, text: 1 / 0)
        idx.compact()
        monkeypatch.undo()
        after = {q: idx.search(q, k=10).ids for q in before}
        assert {q: set(v) for q, v in after.items()} == {q: set(v) for q, v in before.items()}
        live = [i for i in range(8) if i not in (1, 6)]
        assert list(after["quick dog"]) == _bm25_ids(TEXTS, "quick dog", 10, live)[0]
        assert after["中文"] == () and after["lazy"] == ()
    edgevec.verify(lexical_index)
