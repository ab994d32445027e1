"""`edgevec build` after a crash: what a resume trusts is fsync'd and checksummed, and an
output appears under its name complete or not at all.

Regression: staged chunks were never fsync'd, so after a power loss the staging folder
could hold a chunk whose data was zeros or empty while its done marker survived; every
rerun then failed with a traceback until the user deleted the staging folder by hand.
"""

from __future__ import annotations

import json
import logging
import os

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


@pytest.fixture
def clean_build(corpus, tmp_path, minilm, small_chunks) -> bytes:
    out = tmp_path / "clean.edgevec"
    B.build([corpus], str(out), quiet=True)
    return out.read_bytes()


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
    for module in (fileio, staging, B):
        if hasattr(module, "fsync_path"):
            monkeypatch.setattr(module, "fsync_path", record_fsync)
    monkeypatch.setattr(os, "replace", record_replace)
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
