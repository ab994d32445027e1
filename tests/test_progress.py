"""Progress lines (build, add, compact, embedding): drawn on stderr only when asked, with
counts, rate and ETA; never on a pipe or with --quiet."""

from __future__ import annotations

import io

import numpy as np

import edgevec
from edgevec import progress
from helpers import batch_vectors


def test_a_progress_line_has_counts_rate_and_eta(capsys):
    with progress.Progress("embedded", 10, "texts") as shown:
        for _ in range(10):
            shown.update(1)
    err = capsys.readouterr().err
    assert err.startswith("\r  embedded ") and err.endswith("\n")
    last = err.strip().split("\r")[-1].strip()
    assert last.startswith("embedded 10/10 texts (100%), ") and "texts/s, ETA 0:00" in last
    with progress.Progress("added", None, "passages") as shown:  # unknown total: no ETA
        shown.update(5)
        shown._last = 0  # draw now
        shown.update(0)
    assert "added 5 passages, " in capsys.readouterr().err
    with progress.Progress("quiet", 3, enabled=False) as shown:
        shown.update(3)
    assert capsys.readouterr().err == ""


def test_progress_is_wanted_on_a_terminal_only(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress.wanted()
    monkeypatch.setattr("sys.stderr", Tty())
    assert progress.wanted() and not progress.wanted(quiet=True)


def test_compact_with_progress_counts_every_byte_it_writes(tmp_path, capsys):
    path = tmp_path / "p.edgevec"
    with edgevec.Index.create(path, dim=16) as idx:
        for a in range(3):
            idx.add(batch_vectors(a, 50, 16), ids=[f"r{a}-{i}" for i in range(50)],
                    texts=[f"text {i}" for i in range(50)])
        idx.delete(["r0-1"])
        query = batch_vectors(9, 1, 16)[0]
        before = idx.search(query, k=5, exact=True)
        idx.compact(progress=True)
        after = idx.search(query, k=5, exact=True)  # (rows are renumbered)
        assert after.ids == before.ids and len(idx) == 149
        np.testing.assert_array_equal(after.scores, before.scores)
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert "compacted" in last and "(100%)" in last and "kB/s" in last  # a small file
    edgevec.verify(path)
