"""Builds after a crash or a failure: what a resume trusts is fsync'd and checksummed, and
an output (build, convert, merge, Index.create) appears under its name complete or not at
all, leaving any old file untouched.

Regression: staged chunks were never fsync'd, so after a power loss the staging folder
could hold a chunk whose data was zeros or empty while its done marker survived; every
rerun then failed with a traceback until the user deleted the staging folder by hand.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

import edgevec
from edgevec import build as B
from edgevec import staging


class Killed(BaseException):
    """The build's process dying at a chosen point (nothing catches a BaseException)."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    path = folder / "docs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(70):
            f.write(json.dumps({"id": f"d{i}", "text": f"passage {i} about topic {i % 7} "
                                f"and item {i * 3 % 11}", "n": i}) + "\n")
    return str(path)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(B, "CHUNK_DOCS", 20)  # 70 documents: chunks of 20, 20, 20, 10


@pytest.fixture(scope="module")
def clean_bytes(corpus, tmp_path_factory, minilm) -> bytes:
    out = tmp_path_factory.mktemp("clean") / "clean.edgevec"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(B, "CHUNK_DOCS", 20)
        B.build([corpus], str(out), quiet=True)
    return out.read_bytes()


@pytest.fixture
def clean_build(clean_bytes, small_chunks) -> bytes:
    """The bytes of an uninterrupted build of `corpus` (chunks of 20 documents)."""
    return clean_bytes


def _interrupted(corpus: str, out: str, monkeypatch, after: int) -> None:
    """A build that dies right after staging `after` chunks."""
    stage, staged = B._stage_chunk, []

    def stage_then_die(*args):
        stage(*args)
        staged.append(1)
        if len(staged) == after:
            raise Killed
    monkeypatch.setattr(B, "_stage_chunk", stage_then_die)
    with pytest.raises(Killed):
        B.build([corpus], out, quiet=True)
    monkeypatch.setattr(B, "_stage_chunk", stage)


DAMAGE = {
    "zeroed": lambda data: bytes(len(data)),
    "emptied": lambda data: b"",
    "truncated": lambda data: data[:len(data) // 2],
}


@pytest.mark.parametrize("part", ["vectors/data.ninja", "texts/data.ninja",
                                  "ids/starts/data.ninja"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_staged_chunk_is_embedded_again(corpus, tmp_path, monkeypatch, caplog,
                                                   clean_build, damage, part):
    """A staged chunk zeroed, emptied or truncated under its intact done marker (what a
    power loss can leave): the rerun says so, embeds that chunk again, and writes the
    bytes of a clean build."""
    out = str(tmp_path / "out.edgevec")
    _interrupted(corpus, out, monkeypatch, after=3)
    chunk = staging.chunk_path(out + ".staging", 1)
    with open(os.path.join(chunk, part), "rb") as f:
        data = f.read()
    with open(os.path.join(chunk, part), "wb") as f:
        f.write(DAMAGE[damage](data))
    assert os.path.exists(os.path.join(chunk, staging.MARKER))
    embedded = []
    encode = edgevec.Embedder.encode
    monkeypatch.setattr(edgevec.Embedder, "encode",
                        lambda self, texts, **kw: embedded.append(len(texts))
                        or encode(self, texts, **kw))
    with caplog.at_level(logging.WARNING, logger="edgevec"):
        report = B.build([corpus], out, quiet=True)
    assert any("chunk-00000001" in r.getMessage() and "embedding its documents again"
               in r.getMessage() for r in caplog.records)
    assert embedded == [20, 10]  # chunk 1 again, and chunk 3, never staged
    assert report.resumed_from == 40 and report.documents == 70
    with open(out, "rb") as f:
        assert f.read() == clean_build
    assert not os.path.exists(out + ".staging")


def test_a_damaged_done_marker_or_job_file_is_not_a_traceback(corpus, tmp_path, monkeypatch,
                                                              clean_build):
    """A marker cut short, or a job.json full of zeros: the chunk (or the whole staging
    folder) is embedded again, and the output is still the clean build's."""
    out = str(tmp_path / "out.edgevec")
    _interrupted(corpus, out, monkeypatch, after=2)
    marker = os.path.join(staging.chunk_path(out + ".staging", 0), staging.MARKER)
    with open(marker, "r+b") as f:
        f.truncate(5)
    B.build([corpus], out, quiet=True)
    with open(out, "rb") as f:
        assert f.read() == clean_build
    os.unlink(out)
    _interrupted(corpus, out, monkeypatch, after=2)
    job = os.path.join(out + ".staging", "job.json")
    with open(job, "r+b") as f:
        f.write(bytes(os.path.getsize(job)))
    assert B.build([corpus], out, quiet=True).resumed_from == 0
    with open(out, "rb") as f:
        assert f.read() == clean_build


def test_staged_data_is_fsynced_before_its_marker_and_the_output_name_after_it(
        corpus, tmp_path, monkeypatch, minilm, small_chunks):
    """The order a resume relies on: every file of a chunk fsync'd before its done marker
    is written, the staging folder fsync'd after each chunk's rename, and the folder
    holding the output fsync'd after the final rename."""
    import edgevec.fileio as fileio
    events: list[tuple[str, str]] = []
    fsync_path, replace = fileio.fsync_path, os.replace

    def record_fsync(path):
        events.append(("fsync", os.path.abspath(path)))
        fsync_path(path)

    def record_replace(src, dst):
        events.append(("rename", os.path.abspath(dst)))
        replace(src, dst)

    def record_link(src, dst):  # a new name that must not clobber: link, then unlink
        events.append(("rename", os.path.abspath(dst)))
        link(src, dst)
    link = os.link
    for module in (fileio, staging):
        monkeypatch.setattr(module, "fsync_path", record_fsync)
    monkeypatch.setattr(os, "replace", record_replace)
    monkeypatch.setattr(os, "link", record_link)
    out = str(tmp_path / "out.edgevec")
    B.build([corpus], out, quiet=True)
    chunk = os.path.abspath(staging.chunk_path(out + ".staging", 0))
    marker = os.path.join(chunk + ".partial", staging.MARKER)
    first_marker = events.index(("rename", marker))
    for part in ("vectors/data.ninja", "texts/data.ninja", "meta/data.ninja"):
        assert events.index(("fsync", os.path.join(chunk + ".partial", part))) < first_marker
    chunk_rename = events.index(("rename", chunk))
    assert ("fsync", os.path.dirname(chunk)) in events[chunk_rename:]
    final = events.index(("rename", os.path.abspath(out)))
    assert ("fsync", str(tmp_path)) in events[final:]


def temp_files(folder) -> list[str]:
    """What a failed write may leave beside its target (fileio.temp_path)."""
    return sorted(n for n in os.listdir(folder) if n.startswith(".") and n.endswith(".tmp"))


def test_a_failed_model_store_leaves_no_index_and_a_retry_works(tmp_path, monkeypatch,
                                                                 minilm):
    """Regression: Index.create(model=...) wrote the empty index under its name, then
    stored the model; when that failed, a valid index without its model stayed there and
    a retry said IndexExists. Now nothing appears, an old file is left as it was, and the
    retry succeeds."""
    from edgevec.embed import stored
    store = stored.store

    def store_fails(writer, embedder):
        raise edgevec.WriteFailed("disk full (injected)")
    monkeypatch.setattr(stored, "store", store_fails)
    path = tmp_path / "m.edgevec"
    with pytest.raises(edgevec.WriteFailed, match="injected"):
        edgevec.Index.create(path, model=minilm)
    assert not path.exists() and temp_files(tmp_path) == []
    old = tmp_path / "old.edgevec"
    with edgevec.Index.create(old, dim=8) as idx:
        idx.add(np.ones((3, 8), np.float32))
    before = old.read_bytes()
    with pytest.raises(edgevec.WriteFailed):
        edgevec.Index.create(old, model=minilm, overwrite=True)
    assert old.read_bytes() == before and temp_files(tmp_path) == []
    monkeypatch.setattr(stored, "store", store)
    with edgevec.Index.create(path, model=minilm) as idx:
        assert idx.path == str(path) and idx.embedder is not None
        idx.add(texts=["a text"], ids=["a"])
    with edgevec.open(path) as idx:
        assert idx.get("a").text == "a text" and idx.info()["embedder"]


def test_a_failed_convert_overwrite_leaves_the_old_index(tmp_path, monkeypatch):
    """Regression: `edgevec convert --overwrite` replaced a 500-row index at once, and a
    bad row later in the input left a partial 50,000-row index there that verified. Now
    the old index stays, byte for byte, until the new one is complete."""
    from edgevec import cli, convert
    monkeypatch.setattr(convert, "BATCH", 10)  # the bad row comes after a committed batch
    out = tmp_path / "v.edgevec"
    good = tmp_path / "good.txt"
    good.write_text("".join(f"w{i} {i % 5 + 1} {i % 3 + 1} 1\n" for i in range(500)))
    assert cli.main(["convert", str(good), "-o", str(out)]) == 0
    before = out.read_bytes()
    bad = tmp_path / "bad.txt"
    bad.write_text("".join(f"x{i} {i % 5 + 1} 2 1\n" for i in range(25)) + "x25 1 2\n")
    with pytest.raises(edgevec.InvalidInput, match="bad.txt:26: 2 values, expected 3"):
        convert.convert(str(bad), str(out), overwrite=True)
    assert cli.main(["convert", str(bad), "-o", str(out), "--overwrite"]) == 1
    assert out.read_bytes() == before and temp_files(tmp_path) == []
    with edgevec.open(out) as idx:
        assert len(idx) == 500


def test_a_failed_build_leaves_the_old_index(corpus, tmp_path, monkeypatch, clean_build):
    """A build (with a model, or lexical-only) that fails while writing the index file
    leaves the old file at the output untouched and no temporary file; the staged chunks
    stay for the rerun."""
    out = tmp_path / "out.edgevec"
    out.write_bytes(clean_build)
    add = B._add_chunks

    def add_fails(idx, chunks):
        raise edgevec.WriteFailed("disk full (injected)")
    monkeypatch.setattr(B, "_add_chunks", add_fails)
    with pytest.raises(edgevec.WriteFailed):
        B.build([corpus], str(out), overwrite=True, quiet=True)
    assert out.read_bytes() == clean_build and temp_files(tmp_path) == []
    assert os.path.isdir(str(out) + ".staging")
    monkeypatch.setattr(B, "_add_chunks", add)
    monkeypatch.setattr(B, "_add_docs", add_fails)
    with pytest.raises(edgevec.WriteFailed):
        B.build([corpus], str(out), overwrite=True, quiet=True, lexical_only=True)
    assert out.read_bytes() == clean_build and temp_files(tmp_path) == []
