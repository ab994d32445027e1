"""A shard set (edgevec.open_many) searches several files as one index: the same results as
one file holding the same rows in the same order, in every mode, with filters, deletions
and batches; BM25 statistics summed over the shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgevec
from helpers import batch_vectors

def test_a_shard_set_answers_like_one_file(shards_and_whole):
    paths, whole = shards_and_whole
    q = batch_vectors(99, 5, 16)
    texts = ["zip csv", "river stone light", "alpha", "bread bread beta", "nothing"]
    with edgevec.open_many(paths) as many, edgevec.open(whole) as one:
        assert len(many) == len(one) == 130 and sorted(many.ids()) == sorted(one.ids())
        for options in ({"mode": "lexical"}, {"mode": "hybrid", "exact": True},
                        {"mode": "hybrid", "exact": True, "alpha": 0.4},
                        {"mode": "dense", "exact": True}):
            for flt in (None, {"g": 1}, {"g": {"$in": [0, 2]}}):
                for i in range(len(q)):
                    query = texts[i] if options["mode"] == "lexical" else q[i]
                    text = None if options["mode"] != "hybrid" else texts[i]
                    got = many.search(query, k=8, filter=flt, text=text, **options)
                    want = one.search(query, k=8, filter=flt, text=text, **options)
                    assert got.ids == want.ids, (options, flt, i)
                    np.testing.assert_array_equal(got.scores, want.scores)
                    assert got.rows.tolist() == want.rows.tolist()  # global row numbers
                    assert got == want
        batch = many.search(q, k=4, text=texts, mode="hybrid", exact=True)
        assert [list(r.ids) for r in batch] == [
            list(many.search(q[i], k=4, text=texts[i], mode="hybrid", exact=True).ids)
            for i in range(len(q))]
        funnel = many.search(q[0], k=5)  # each shard's own funnel, merged by score
        assert list(funnel.scores) == sorted(funnel.scores, reverse=True) and len(funnel) == 5
        assert many.get("s3-0") == one.get("s3-0") and "s2-3" not in many
        assert many.contains(["s1-0", "s2-3", "nope"]).tolist() == [True, False, False]
        assert sorted(many.ids(filter={"g": 1})) == sorted(one.ids(filter={"g": 1}))
        info = many.info()
        assert (info["rows"], info["stored_rows"], info["deleted"]) == (130, 132, 2)
        assert len(info["shards"]) == 3 and info["dim"] == 16
        with pytest.raises(edgevec.UnknownId, match="none of the 3 shards"):
            many.get("s2-3")


def test_shards_built_differently_are_refused(tmp_path, shards_and_whole):
    paths, _ = shards_and_whole

    def make(name, **options):
        path = tmp_path / name
        with edgevec.Index.create(path, **options) as idx:
            idx.add(batch_vectors(0, 2, options.get("dim", 16)), ids=[5, 6] if name ==
                    "ints.edgevec" else ["x", "y"], texts=["a", "b"])
        return path
    for other, words in ((make("d8.edgevec", dim=8, lexical=True), "its dim differs"),
                         (make("nolex.edgevec", dim=16), "its lexical settings differ"),
                         (make("bm25.edgevec", dim=16, lexical=True, bm25={"k1": 2.0}),
                          "its lexical settings differ"),
                         (make("ints.edgevec", dim=16, lexical=True, store_f16=True),
                          "mix int and str ids")):
        with pytest.raises(edgevec.InvalidInput, match=words):
            edgevec.open_many([paths[0], other])
    with pytest.raises(edgevec.InvalidInput, match="at least one"):
        edgevec.open_many([])
    with pytest.raises(edgevec.EdgevecError):
        edgevec.open_many([paths[0], tmp_path / "missing.edgevec"])


def test_shards_with_different_text_models_are_refused(tmp_path, text_shards):
    """The same dimension, another model (the dynamically quantised build of MiniLM)."""
    from edgevec.embed import Embedder, build_model
    build_model("minilm-l6", "dyn8", allow_download=False)
    other = tmp_path / "dyn8.edgevec"
    with edgevec.Index.create(other, model=Embedder.load("minilm-l6", variant="dyn8")) as idx:
        idx.add(texts=["Another model's passage."], ids=["x"])
    with pytest.raises(edgevec.InvalidInput, match="its text model differs"):
        edgevec.open_many([text_shards[0], other])
    with pytest.raises(edgevec.InvalidInput, match="its text model differs"):
        edgevec.merge([text_shards[0], other], tmp_path / "m.edgevec")
    assert not (tmp_path / "m.edgevec").exists()


def test_text_shards_embed_queries_with_their_shared_model(tmp_path, text_shards):
    from conftest import SHARD_DOCS as docs
    paths = text_shards
    with edgevec.open_many(paths) as many:
        for mode in ("hybrid", "dense", "lexical"):
            assert many.search("reading a zip archive", k=1, mode=mode).ids == ("d1",)
        assert many.search("comma separated values", k=1).ids == ("d3",)
    edgevec.merge(paths, tmp_path / "merged.edgevec")  # the model travels into the merge
    with edgevec.open(tmp_path / "merged.edgevec") as one:
        assert one.info()["embedder"] == edgevec.info(paths[0])["embedder"]
        assert one.search("reading a zip archive", k=1).ids == ("d1",)
    words = []
    for j in range(2):  # lexical-only shards merge too
        path = tmp_path / f"w{j}.edgevec"
        with edgevec.Index.create(path, lexical_only=True) as idx:
            idx.add(texts=docs[2 * j:2 * j + 2], ids=[f"d{2 * j}", f"d{2 * j + 1}"])
        words.append(path)
    edgevec.merge(words, tmp_path / "words.edgevec")
    with edgevec.open(tmp_path / "words.edgevec") as one:
        assert one.info()["lexical_only"] and one.search("zipfile", k=1).ids == ("d1",)


def test_cli_searches_several_files_as_one(shards_and_whole, capsys):
    from edgevec import cli
    paths, whole = shards_and_whole
    assert cli.main(["search", *map(str, paths), "zip csv", "--mode", "lexical", "-k", "3",
                     "--json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert cli.main(["search", str(whole), "zip csv", "--mode", "lexical", "-k", "3",
                     "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert many["results"] == one["results"] and len(one["results"]) == 3


def test_merge_writes_one_file_that_answers_like_the_set(tmp_path, shards_and_whole):
    from edgevec import cli
    paths, whole = shards_and_whole
    merged = tmp_path / "merged.edgevec"
    report = edgevec.merge(paths, merged)
    assert report["rows"] == 130 and not list(tmp_path.glob(".merged.edgevec.*.tmp"))
    edgevec.verify(merged)
    q = batch_vectors(98, 3, 16)
    with edgevec.open(merged) as one, edgevec.open_many(paths) as many:
        assert sorted(one.ids()) == sorted(many.ids()) and one.info()["deleted"] == 0
        a, b = one.get("s3-5"), many.get("s3-5")
        assert (a.id, a.text, a.metadata) == (b.id, b.text, b.metadata)
        np.testing.assert_allclose(a.vector, b.vector, atol=1e-3)  # float16 kept
        assert one.info()["lexical"] == many.info()["lexical"]
        for i, text in enumerate(["zip csv", "river", "alpha beta"]):
            for mode in ("lexical", "hybrid", "dense"):
                query = text if mode == "lexical" else q[i]
                kwargs = {"text": text} if mode == "hybrid" else {}
                a = one.search(query, k=6, mode=mode, exact=True, filter={"g": 1}, **kwargs)
                b = many.search(query, k=6, mode=mode, exact=True, filter={"g": 1}, **kwargs)
                assert a.ids == b.ids
                if mode == "dense":  # BM25 scores differ: merging drops the deleted rows
                    # (from N, df, avgdl); float16 kept: cosines within float rounding
                    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    with pytest.raises(edgevec.InvalidInput, match="already exists"):
        edgevec.merge(paths, merged)
    assert cli.main(["merge", *map(str, paths), "-o", str(merged), "--overwrite"]) == 0
    clash = tmp_path / "clash.edgevec"  # an id in two shards
    with edgevec.Index.create(clash, dim=16, lexical=True, store_f16=True) as idx:
        idx.add(batch_vectors(5, 1, 16), ids=["s1-0"], texts=["again"])
    with pytest.raises(edgevec.DuplicateId, match="s1-0"):
        edgevec.merge([paths[0], clash], tmp_path / "bad.edgevec")
    assert not (tmp_path / "bad.edgevec").exists()
    assert not list(tmp_path.glob(".bad.edgevec.*.tmp"))  # no temporary file left


def test_a_manifest_stands_for_its_files(tmp_path, shards_and_whole, capsys):
    from edgevec import cli
    paths, whole = shards_and_whole
    manifest = edgevec.write_manifest(tmp_path / "set.shards", paths)
    assert open(manifest).read().splitlines() == [p.name for p in paths]  # relative
    with edgevec.open_many(manifest) as a, edgevec.open_many(paths) as b:
        assert a.paths == b.paths and a.search("zip csv", mode="lexical") == \
            b.search("zip csv", mode="lexical")
    assert cli.main(["search", manifest, "zip", "--mode", "lexical", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 10 and out["missing"] == []
    report = edgevec.merge([manifest], tmp_path / "m.edgevec")
    assert report["rows"] == 130
    (tmp_path / "empty.shards").write_text("# nothing yet\n\n")
    with pytest.raises(edgevec.InvalidInput, match="names no index files"):
        edgevec.open_many(tmp_path / "empty.shards")
    with pytest.raises(edgevec.InvalidInput, match="cannot read the shard manifest"):
        edgevec.open_many(tmp_path / "absent.shards")
    with pytest.raises(edgevec.InvalidInput, match="ends with .shards"):
        edgevec.write_manifest(tmp_path / "set.txt", paths)
    (tmp_path / "bad.shards").write_text("shard-0.edgevec\nno-such.edgevec\n")
    with pytest.raises(edgevec.IndexNotFound, match="no-such.edgevec"):
        edgevec.open_many(tmp_path / "bad.shards")
    assert cli.main(["search", manifest, "zip", "--timeout", "3"]) == 1
    assert "apply to a shard set served on Ray" in capsys.readouterr().err
