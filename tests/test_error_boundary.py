"""Only EdgevecError leaves edgevec: every public entry point and CLI command, fed hostile
arguments (wrong types, NaN, huge ints, missing files, odd shapes), either works or raises
an EdgevecError; the CLI answers with an exit code, never a traceback. As test_fuzz does
for damaged files, for arguments."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import edgevec
from edgevec import cli
from helpers import batch_vectors

HOSTILE = [None, True, -1, 0, 2**70, -2**70, 1.5, float("nan"), float("inf"), "", "x",
           b"bytes", [], [None], [[1.0]], {}, {"$x": 1}, object(), np.array([np.nan]),
           np.zeros((2, 2, 2)), np.array(["a"]), np.int64(3), "\udcff"]


def outcome(call) -> str:
    """'ok', 'edgevec' for an EdgevecError, else the foreign exception's name."""
    try:
        call()
    except edgevec.EdgevecError:
        return "edgevec"
    except Exception as exc:  # noqa: BLE001 - what the test is looking for
        return f"{type(exc).__name__}: {str(exc)[:80]}"
    return "ok"


@pytest.fixture
def index(tmp_path):
    idx = edgevec.Index.create(tmp_path / "b.edgevec", dim=8)
    idx.add(batch_vectors(0, 30, 8), metadata=[{"n": i, "tag": "t"} for i in range(30)])
    yield idx
    idx.close()


def _calls(idx, tmp_path, value):
    q = batch_vectors(1, 1, 8)[0]
    return {
        "create(path)": lambda: edgevec.Index.create(value, dim=8),
        "create(dim)": lambda: edgevec.Index.create(tmp_path / "d.edgevec", dim=value,
                                                    overwrite=True),
        "create(model)": lambda: edgevec.Index.create(tmp_path / "m.edgevec", model=value,
                                                      overwrite=True),
        "create(user_metadata)": lambda: edgevec.Index.create(
            tmp_path / "u.edgevec", dim=8, user_metadata=value, overwrite=True),
        "create(metric)": lambda: edgevec.Index.create(tmp_path / "e.edgevec", dim=8,
                                                       metric=value, overwrite=True),
        "create(store_f16)": lambda: edgevec.Index.create(tmp_path / "f.edgevec", dim=8,
                                                          store_f16=value, overwrite=True),
        "create(lexical)": lambda: edgevec.Index.create(tmp_path / "l.edgevec", dim=8,
                                                        lexical=value, overwrite=True),
        "create(overwrite)": lambda: edgevec.Index.create(tmp_path / "b.edgevec", dim=8,
                                                          overwrite=value),
        "open(path)": lambda: edgevec.open(value),
        "open(writable)": lambda: edgevec.open(tmp_path / "b.edgevec", writable=value),
        "open(lock_timeout)": lambda: edgevec.open(tmp_path / "b.edgevec", lock_timeout=value),
        "info(path)": lambda: edgevec.info(value),
        "verify(path)": lambda: edgevec.verify(value),
        "add(vectors)": lambda: idx.add(value),
        "add(ids)": lambda: idx.add(batch_vectors(5, 1, 8), ids=value),
        "add(texts)": lambda: idx.add(batch_vectors(6, 1, 8), texts=value),
        "add(metadata)": lambda: idx.add(batch_vectors(7, 1, 8), metadata=value),
        "search(query)": lambda: idx.search(value),
        "search(k)": lambda: idx.search(q, k=value),
        "search(filter)": lambda: idx.search(q, filter=value),
        "search(min_score)": lambda: idx.search(q, min_score=value),
        "search(m)": lambda: idx.search(q, m=value),
        "search(exact)": lambda: idx.search(q, exact=value),
        "search(threads)": lambda: idx.search(q, threads=value),
        "search(embedder)": lambda: idx.search(q, embedder=value),
        "search(mode)": lambda: idx.search(q, mode=value),
        "search(text, mode)": lambda: idx.search("text", mode=value),
        "get(id)": lambda: idx.get(value),
        "delete(ids)": lambda: idx.delete(value),
        "calibrate(target)": lambda: idx.calibrate(target=value),
        "calibrate(k)": lambda: idx.calibrate(k=value),
        "Embedder.load": lambda: edgevec.Embedder.load(value),
    }


def test_every_api_entry_point_raises_only_edgevec_errors(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "x", b"bytes" and "\udcff" are paths that can be created
    leaks = []
    for value in HOSTILE:
        for name, call in _calls(index, tmp_path, value).items():
            result = outcome(call)
            if result not in ("ok", "edgevec"):
                leaks.append(f"{name} with {value!r:.30}: {result}")
    assert not leaks, "\n".join(leaks)


CLI_CASES = [
    ["search"], ["search", "{missing}"], ["search", "{missing}", "q"],
    ["search", "{index}", "q", "-k", "nan"], ["search", "{index}", "q", "-k", "-3"],
    ["search", "{index}", "q", "--filter", "[1, 2]"], ["search", "{index}", "q", "--filter", "{{"],
    ["search", "{index}", "1,2,3"], ["search", "{dir}", "q"],
    ["info", "{missing}"], ["info", "{dir}"], ["info", "{junk}"], ["verify", "{junk}"],
    ["compact", "{missing}"], ["delete", "{index}", "nope"], ["delete", "{index}"],
    ["add", "{index}", "{missing}"], ["add", "{missing}", "{junk}"],
    ["convert", "{junk}", "-o", "{out}"], ["convert", "{missing}", "-o", "{out}"],
    ["convert", "{junk}", "-o", "{dir}"], ["build", "{missing}", "-o", "{out}"],
    ["build", "{junk}", "-o", "{junk}"], ["build", "-o", "{out}"],
    ["model", "build", "no-such-model"], ["model", "frobnicate"], ["frobnicate"], [],
]


def test_every_cli_command_answers_with_an_exit_code(index, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\xff" * 100)
    paths = {"index": str(tmp_path / "b.edgevec"), "missing": str(tmp_path / "nope"),
             "dir": str(tmp_path), "junk": str(junk), "out": str(tmp_path / "o.edgevec")}
    index.close()
    leaks = []
    for case in CLI_CASES:
        argv = [a.format(**paths) for a in case]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(argv)
        except BaseException as exc:  # noqa: BLE001 - a traceback is the failure
            leaks.append(f"{case}: {type(exc).__name__}: {exc}")
            continue
        if code not in (0, 1, 2):
            leaks.append(f"{case}: exit {code}")
        elif code == 1 and "Traceback" in err.getvalue():
            leaks.append(f"{case}: traceback on stderr")
    assert not leaks, "\n".join(leaks)


@pytest.mark.slow
def test_cli_on_a_full_disk_and_a_read_only_folder(tmp_path, minilm):
    """Regression: `edgevec build` on a full disk died of SIGBUS (the staged vectors are
    written through a memory map). build and convert on a full disk, build on a read-only
    mount: exit 1 with one `edgevec:` line, never a traceback or a crash."""
    import subprocess
    from test_durability import _tmpfs
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(f'{{"id": "d{i}", "text": "passage {i} {"word " * 40}"}}\n'
                              for i in range(300)))
    vectors = tmp_path / "v.txt"
    vectors.write_text("".join(f"w{i} " + " ".join(str((i * j) % 7 - 3) for j in range(64))
                               + "\n" for i in range(3000)))

    def run(*argv) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main([str(a) for a in argv])
        return code, err.getvalue()
    with _tmpfs(tmp_path, "300k") as mnt:
        for argv in (["build", corpus, "-o", f"{mnt}/b.edgevec", "--quiet"],
                     ["convert", vectors, "-o", f"{mnt}/c.edgevec"]):
            code, err = run(*argv)
            assert code == 1 and err.startswith("edgevec: ") and "Traceback" not in err, err
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        code, err = run("build", corpus, "-o", f"{mnt}/r.edgevec", "--quiet")
        assert code == 1 and ("permission denied" in err or "read-only" in err.lower()), err
