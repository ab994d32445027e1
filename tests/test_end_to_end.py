"""The main job end to end, through the API and the CLI (in-process): build, search, add,
delete, compact, reopen, filters, min_score, batch queries, convert, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import edgevec
from edgevec import cli
from edgevec.build import build

DOCS = [
    ("py-csv", "How to parse CSV files in Python with the csv module and DictReader.", "en",
     2019, "python"),
    ("py-json", "Reading and writing JSON documents with json.load and json.dumps.", "en",
     2020, "python"),
    ("bread", "Baking sourdough bread needs flour, water, salt and a starter.", "en", 2018,
     "food"),
    ("mmap", "Memory-mapped files let the kernel page data in on demand.", "en", 2021,
     "systems"),
    ("pain", "La recette du pain demande de la farine, de l'eau et du sel.", "fr", 2018,
     "food"),
    ("sort", "Sorting a list in place with list.sort or making a copy with sorted().", "en",
     2022, "python"),
    ("gzip", "Compressing data with gzip and decompressing it again.", "en", 2017, "python"),
    ("tcp", "Opening a TCP socket connection and sending bytes to a server.", "en", 2016,
     "systems"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, minilm):
    d = tmp_path_factory.mktemp("corpus")
    path = d / "docs.jsonl"
    with open(path, "w") as f:
        for ident, text, lang, year, topic in DOCS:
            f.write(json.dumps({"id": ident, "text": text, "lang": lang, "year": year,
                                "topic": topic}) + "\n")
        f.write("not json\n")
        f.write(json.dumps({"id": "empty", "text": ""}) + "\n")
    return path


@pytest.fixture
def built(corpus, tmp_path):
    out = str(tmp_path / "docs.edgevec")
    assert cli.main(["build", str(corpus), "-o", out, "--id-field", "id", "--quiet"]) == 0
    return out


def test_build_and_search_through_the_cli(built, capsys):
    assert cli.main(["search", built, "how do I read a csv file", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["id"] == "py-csv"
    assert out["results"][0]["metadata"] == {"lang": "en", "year": 2019, "topic": "python"}
    assert cli.main(["search", built, "bread recipe", "--filter", '{"lang": "fr"}']) == 0
    text = capsys.readouterr().out
    assert "pain" in text and "bread" not in text.split("(")[0].replace("bread recipe", "")
    assert out["results"][0]["ranks"]["dense"] >= 1  # hybrid by default: who found it
    assert cli.main(["search", built, "csv", "--mode", "lexical", "--json"]) == 0
    lexical = json.loads(capsys.readouterr().out)["results"]
    assert lexical[0]["id"] == "py-csv" and "ranks" not in lexical[0]
    assert cli.main(["search", built, "csv files", "-k", "2"]) == 0
    assert "[dense #" in capsys.readouterr().out
    assert cli.main(["search", built, "how do I read a csv file", "--alpha", "0.7",
                     "--json"]) == 0
    weighted = json.loads(capsys.readouterr().out)["results"]
    assert weighted[0]["id"] == "py-csv" and 0 <= weighted[-1]["score"] <= 1
    assert cli.main(["info", built, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == len(DOCS) and info["embedder"]["name"] == "minilm-l6"
    assert info["lexical"]["analyzer"]["stop_words"] == "en" and info["lexical_bytes"] > 0
    assert cli.main(["verify", built]) == 0


def test_cli_errors_are_one_line_and_exit_codes(built, capsys, tmp_path):
    assert cli.main(["search", built, "x", "--filter", "{bad json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgevec: ") and err.count("\n") == 1
    assert cli.main(["search", built, "x", "--filter", '{"nope": 1}']) == 1
    assert "unknown filter field 'nope'" in capsys.readouterr().err
    assert cli.main(["search", str(tmp_path / "missing.edgevec"), "x"]) == 1
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["build", str(tmp_path), "-o", str(tmp_path / "e.edgevec")]) == 1
    assert "corpus is empty" in capsys.readouterr().err
    assert cli.main(["search", built, "x", "-k", "0"]) == 1


def test_api_add_delete_compact_reopen(built, minilm):
    with edgevec.open(built, writable=True) as idx:
        idx.add(texts=["Parsing TSV and CSV with pandas read_csv."], ids=["pandas"],
                metadata=[{"lang": "en", "year": 2023, "topic": "python"}])
        res = idx.search("csv parsing", k=2)
        assert set(res.ids) == {"py-csv", "pandas"}
        idx.delete(["py-csv"])
        assert "py-csv" not in idx.search("csv parsing", k=5).ids
        idx.compact()
    with edgevec.open(built) as idx:
        assert len(idx) == len(DOCS)
        assert idx.search("csv parsing", k=1).ids == ("pandas",)
        batch = idx.search(["csv parsing", "bread"], k=1)
        assert batch.ids == (("pandas",), ("bread",))


def test_filters_min_score_and_k_rows_when_k_match(built):
    with edgevec.open(built) as idx:
        res = idx.search("anything", k=3, filter={"topic": "food"})
        assert set(res.ids) == {"bread", "pain"}  # only 2 rows match: both come back
        res = idx.search("python", k=10, filter={"$and": [{"year": {"$gte": 2019}},
                                                          {"topic": {"$in": ["python"]}}]})
        assert set(res.ids) == {"py-csv", "py-json", "sort"}
        res = idx.search("python", k=10, filter={"$or": [{"lang": "fr"}, {"year": 2016}]})
        assert set(res.ids) == {"pain", "tcp"}
        res = idx.search("python", k=10, filter={"$not": {"lang": "en"}})
        assert res.ids == ("pain",)
        res = idx.search("csv files", k=10, min_score=0.5, mode="dense")  # cosine >= 0.5
        assert res.ids == ("py-csv",)
        hybrid = idx.search("csv files", k=10)  # the default for text: RRF scores
        assert hybrid.ids[0] == "py-csv" and hybrid.ranks[0].tolist() == [1, 1]
        assert idx.search("csv files", k=10, min_score=float(hybrid.scores[0])).ids == (
            "py-csv",)  # min_score applies to the mode's score
        with pytest.raises(edgevec.InvalidInput, match="needs a numeric field"):
            idx.search("x", filter={"lang": {"$gt": "a"}})
        with pytest.raises(edgevec.InvalidInput, match=r"unknown operator .\$regex"):
            idx.search("x", filter={"year": {"$regex": "1"}})


def test_model_mismatch_and_wrong_dimension(built, tmp_path):
    from edgevec.embed import Embedder
    from test_embed import TINY, build_bert, random_weights, tiny_tokenizer
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "model.onnx").write_bytes(build_bert(random_weights(TINY), TINY,
                                              "fp32").SerializeToString())
    (d / "tokenizer.json").write_bytes(tiny_tokenizer())
    other = Embedder.load(str(d))
    with edgevec.open(built) as idx:
        with pytest.raises(edgevec.ModelMismatch, match="built with model minilm-l6"):
            idx.search(other.encode(["csv"])[0], embedder=other)
        with pytest.raises(edgevec.DimensionMismatch):
            idx.search(np.ones(32, np.float32))


def test_bad_corpus_inputs_are_counted_not_fatal(tmp_path, minilm):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Title\n\nSome text about vector search.\n")
    (folder / "sub" / "b.txt").write_text("Another passage.\n\n" + "word " * 500)
    (folder / "bin.txt").write_bytes(b"\x00\x01\x02")
    (folder / "latin1.md").write_bytes("caf\xe9".encode("latin-1"))
    report = build([str(folder)], str(tmp_path / "f.edgevec"), quiet=True)
    assert report.skipped == 2 and report.documents == 1 + 4  # 500 words -> 3 + 1 passages
    with edgevec.open(str(tmp_path / "f.edgevec")) as idx:
        rec = idx.get("sub/b.txt#0")
        assert rec.metadata == {"path": "sub/b.txt", "passage": 0}


def test_library_warns_through_logging_and_the_cli_shows_it(tmp_path, minilm, caplog,
                                                             capfd):
    """Library code used to print warnings to stderr itself; it logs to the "edgevec"
    logger now (a progress line only when asked), and the CLI shows them as one-line
    `edgevec: ...` messages."""
    import logging
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Some text about vector search.\n")
    (folder / "bin.txt").write_bytes(b"\x00\x01\x02")
    with caplog.at_level(logging.WARNING, logger="edgevec"):
        build([str(folder)], str(tmp_path / "lib.edgevec"))
    assert any("skipping" in r.getMessage() and "bin.txt" in r.getMessage()
               for r in caplog.records if r.name == "edgevec")
    assert capfd.readouterr().err == ""  # no progress line, no print
    assert cli.main(["build", str(folder), "-o", str(tmp_path / "cli.edgevec")]) == 0
    assert "edgevec: skipping" in capfd.readouterr().err
    assert cli.main(["build", str(folder), "-o", str(tmp_path / "q.edgevec"), "--quiet"]) == 0
    assert "skipping" not in capfd.readouterr().err


def test_opening_a_non_index_or_read_only_for_writing(built, tmp_path):
    other = tmp_path / "x.jsonl"
    other.write_text("{}\n")
    with pytest.raises(edgevec.NotAnEdgevecFile):
        edgevec.open(str(other))
    with edgevec.open(built) as idx:
        with pytest.raises(edgevec.ReadOnlyError, match="writable=True"):
            idx.add(texts=["x"], ids=["x"])


def test_convert_word_vectors(tmp_path, capsys):
    src = tmp_path / "vecs.txt"
    rng = np.random.default_rng(0)
    words = ["king", "queen", "apple", "pear", "king"]  # a duplicate is skipped
    with open(src, "w") as f:
        f.write(f"{len(words)} 8\n")
        base = rng.normal(size=8)
        for i, w in enumerate(words):
            v = base + (0.05 if w in ("king", "queen") else 2.0) * rng.normal(size=8) * (i + 1)
            f.write(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n")
    out = str(tmp_path / "vecs.edgevec")
    assert cli.main(["convert", str(src), "-o", out]) == 0
    with edgevec.open(out) as idx:
        assert len(idx) == 4
        assert idx.search(idx.get("king").vector, k=2).ids == ("king", "queen")
    npy = tmp_path / "m.npy"
    np.save(npy, rng.normal(size=(3, 4)).astype(np.float32))
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    assert cli.main(["convert", str(npy), "-o", str(tmp_path / "n.edgevec"), "--ids",
                     str(tmp_path / "ids.txt")]) == 0
    assert cli.main(["convert", str(npy), "-o", str(tmp_path / "n2.edgevec")]) == 1


KILLED_BUILD = """
import sys
from edgevec import build as B
B.CHUNK_DOCS = 50
B.build([sys.argv[1]], sys.argv[2], id_field="id", quiet=True)
"""

# The same build, killed by SIGKILL right after its third chunk is staged on disk: a
# deterministic crash point (the test used to poll the staging folder and sleep).
DIES_AFTER_3_CHUNKS = KILLED_BUILD.replace("B.build(", """
import os, signal
stage, staged = B._stage_chunk, []
def stage_then_die(*args):
    stage(*args)
    staged.append(1)
    if len(staged) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
B._stage_chunk = stage_then_die
B.build(""", 1)


@pytest.mark.slow
def test_killed_build_resumes_to_the_same_index(tmp_path, minilm):
    src = tmp_path / "many.jsonl"
    with open(src, "w") as f:
        for i in range(600):
            f.write(json.dumps({"id": f"d{i}", "text": f"document number {i} about topic "
                                f"{i % 17} and item {i * 7 % 23}", "n": i}) + "\n")
    full = str(tmp_path / "full.edgevec")
    subprocess.run([sys.executable, "-c", KILLED_BUILD, str(src), full], check=True,
                   env=dict(os.environ))
    part = str(tmp_path / "part.edgevec")
    killed = subprocess.run([sys.executable, "-c", DIES_AFTER_3_CHUNKS, str(src), part],
                            env=dict(os.environ))
    assert killed.returncode == -signal.SIGKILL
    staging = part + ".staging"
    assert not os.path.exists(part) and os.path.isdir(staging)
    out = subprocess.run([sys.executable, "-c", KILLED_BUILD.replace(
        "quiet=True)", "quiet=True); print(r)").replace("B.build(", "r = B.build("),
        str(src), part], check=True, capture_output=True, text=True, env=dict(os.environ))
    assert "resumed_from=" in out.stdout and "resumed_from=0," not in out.stdout
    with edgevec.open(full) as a, edgevec.open(part) as b:
        assert a.ids() == b.ids()
        q = a.search("topic 5 item 3", k=10)
        assert b.search("topic 5 item 3", k=10).ids == q.ids
        for ident in ("d0", "d299", "d599"):
            np.testing.assert_array_equal(a.get(ident).vector, b.get(ident).vector)
    assert not os.path.exists(staging)


def test_add_texts_from_a_generator(tmp_path, minilm):
    """Regression: texts given as a generator (no len) were rejected as '-1 rows', and a
    second validation pass would have found the generator already consumed."""
    with edgevec.Index.create(tmp_path / "g.edgevec", model=minilm) as idx:
        ids = idx.add(texts=(t for t in ["csv parsing", "bread baking"]), ids=["a", "b"])
        assert ids == ["a", "b"] and idx.get("b").text == "bread baking"
        with pytest.raises(edgevec.InvalidInput, match="single str"):
            idx.add(texts="just one string")


def test_csv_long_fields_malformed_files_and_unwritable_outputs(tmp_path, monkeypatch, minilm):
    """Regression: a CSV cell over csv's 128 KB limit raised _csv.Error out of `edgevec
    build`, and an output that cannot be created raised an OSError from the
    staging folder (here: an output below a regular file). Long cells are read, a malformed
    file is a counted skip, and disk problems are one EdgevecError naming the path."""
    from edgevec import ingest
    from edgevec.ingest import Stats, documents
    big = tmp_path / "big.csv"
    big.write_text("id,text\nlong," + "word " * 40_000 + "\nshort,a short text\n")
    stats = Stats()
    docs = list(documents([str(big)], id_field="id", stats=stats, quiet=True))
    assert [d.id for d in docs][-1] == "short" and not stats.skipped
    assert __import__("csv").field_size_limit() == 131072  # put back after reading
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(edgevec.EdgevecError, match="a-file.*writable folder"):
        build([str(big)], str(tmp_path / "a-file" / "out.edgevec"), id_field="id", quiet=True)
    assert cli.main(["build", str(big), "-o", str(tmp_path / "a-file" / "o.edgevec")]) == 1
    monkeypatch.setattr(ingest, "CSV_FIELD_LIMIT", 0)  # as if the cell were over the limit
    stats = Stats()
    assert list(documents([str(big)], id_field="id", stats=stats, quiet=True)) == []
    assert "malformed CSV" in stats.skipped[0][1]


def test_records_take_their_id_field_by_default(tmp_path):
    """A JSONL/CSV record's "id" field is its id (as in every framework); without one the
    id is file:line; --id-field still chooses another field."""
    from edgevec.ingest import documents
    src = tmp_path / "c.jsonl"
    src.write_text('{"id": "a-1", "text": "alpha", "lang": "en"}\n'
                   '{"text": "no id here", "lang": "fr"}\n'
                   '{"id": 7, "text": "seven", "key": "k7"}\n', encoding="utf-8")
    docs = list(documents([str(src)], quiet=True))
    assert [d.id for d in docs] == ["a-1", "c.jsonl:2", "7"]
    assert docs[0].metadata == {"lang": "en"} and docs[2].metadata == {"key": "k7"}
    assert [d.id for d in documents([str(src)], id_field="key", quiet=True)] == ["k7"]
    csv_src = tmp_path / "c.csv"
    csv_src.write_text("id,text,lang\nx1,first,en\n,second,de\n", encoding="utf-8")
    docs = list(documents([str(csv_src)], quiet=True))
    assert [d.id for d in docs] == ["x1", "c.csv:3"] and docs[0].metadata == {"lang": "en"}


def test_cli_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == \
        f"edgevec {edgevec.__version__} (file format 1.4)"
