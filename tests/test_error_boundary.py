"""Only EdgevecError leaves edgevec: every public entry point and CLI command, fed hostile
arguments (wrong types, NaN, huge ints, missing files, odd shapes), either works or raises
an EdgevecError; the CLI answers with an exit code, never a traceback. As test_fuzz does
for damaged files, for arguments."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading

import numpy as np
import pytest

import edgevec
from edgevec import InvalidInput, cli
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


# --- the hostile-input battery: every public entry point, each input's exact error --------
#
# Regressions (issue 23, "inputs that escape or hang"): filters and metadata nested
# 10,000 deep raised RecursionError (API and CLI), a filter key that is not a str
# AttributeError, lone surrogates in user_metadata UnicodeEncodeError, lock_timeout="x"
# TypeError and lock_timeout=NaN hung on a locked file, threads=0/-1/2.5/"x" were accepted
# on the NumPy path, a lexical k=10**9 allocated 8 GB, and a FIFO among the inputs (a
# source, a vector file, a manifest, a writable index) hung the call.

DEEP = 10_000


def deep_filter(levels: int = DEEP) -> dict:
    f: dict = {"n": 1}
    for _ in range(levels):
        f = {"$not": f}
    return f


def deep_value(levels: int = DEEP) -> object:
    v: object = 1
    for i in range(levels):
        v = {"a": v} if i % 2 else [v]
    return v


SURROGATE = "caf\ud800"

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


@contextlib.contextmanager
def fifo(path):
    """A FIFO at `path` whose writer end a thread opens (and closes at once) as soon as
    any reader opens it: code that opens it blocking reads an empty stream instead of
    hanging the test, and the thread is released at the end whatever happened (no
    sleeps: the open calls themselves synchronise)."""
    os.mkfifo(path)
    writer = threading.Thread(target=lambda: os.close(os.open(path, os.O_WRONLY)), daemon=True)
    writer.start()
    try:
        yield str(path)
    finally:
        if writer.is_alive():  # nobody opened it for reading: be that reader
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            writer.join()
            os.close(fd)


@pytest.fixture
def text_index(tmp_path):
    """A lexical index with vectors, 2,000 rows (the size the k=10**9 report used)."""
    path = tmp_path / "t.edgevec"
    with edgevec.Index.create(path, dim=8, lexical=True) as idx:
        idx.add(batch_vectors(2, 2000, 8),
                texts=[f"alpha word{i % 50} beta" for i in range(2000)],
                metadata=[{"n": i, "tag": "t"} for i in range(2000)])
    return str(path)


def raises_exactly(cls, call, match: str | None = None):
    """`call()` raises `cls` itself (not a parent, not a sibling subclass)."""
    with pytest.raises(edgevec.EdgevecError, match=match) as info:
        call()
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    return info.value


def _battery(idx, path: str, tmp_path) -> dict:
    """{name: (call, the exact error, a part of its message)}: nesting, surrogates, NaN
    and huge ints at every entry point that takes them."""
    from edgevec.build import build
    from edgevec.convert import convert
    q = batch_vectors(1, 1, 8)[0]
    v = batch_vectors(3, 1, 8)
    other = str(tmp_path / "new.edgevec")
    bad_path = str(tmp_path / SURROGATE)
    nested, surrogate, nan = "64 levels", "lone surrogate", "finite"
    return {
        "search(filter nested)": (lambda: idx.search(q, filter=deep_filter()), InvalidInput,
                                  nested),
        "search(filter 65 deep)": (lambda: idx.search(q, filter=deep_filter(64)),
                                   InvalidInput, nested),
        "search(filter key int)": (lambda: idx.search(q, filter={1: 2}), InvalidInput,
                                   "must be a str"),
        "search(filter key in $or)": (lambda: idx.search(q, filter={"$or": [{None: 1}]}),
                                      InvalidInput, "must be a str"),
        "search(filter surrogate)": (lambda: idx.search(q, filter={"tag": SURROGATE}),
                                     InvalidInput, surrogate),
        "search(lexical, surrogate)": (lambda: idx.search(SURROGATE, mode="lexical"),
                                       InvalidInput, surrogate),
        "search(text=surrogate)": (lambda: idx.search(q, text=SURROGATE), InvalidInput,
                                   surrogate),
        "search(batch, surrogate)": (lambda: idx.search(["ok", SURROGATE], mode="lexical"),
                                     InvalidInput, surrogate),
        "search(min_score NaN)": (lambda: idx.search(q, min_score=float("nan")),
                                  InvalidInput, nan),
        "search(k NaN)": (lambda: idx.search(q, k=float("nan")), InvalidInput, "positive int"),
        "search(threads 0)": (lambda: idx.search(q, threads=0), InvalidInput, "threads"),
        "search(threads -1)": (lambda: idx.search(q, threads=-1), InvalidInput, "threads"),
        "search(threads 2.5)": (lambda: idx.search(q, threads=2.5), InvalidInput, "threads"),
        "search(threads x)": (lambda: idx.search(q, threads="x"), InvalidInput, "threads"),
        "search(threads True, lexical)": (lambda: idx.search("alpha", mode="lexical",
                                                             threads=True), InvalidInput,
                                          "threads"),
        "search(vector NaN)": (lambda: idx.search(np.full(8, np.nan)), InvalidInput, "NaN"),
        "ids(filter nested)": (lambda: idx.ids(filter=deep_filter()), InvalidInput, nested),
        "add(metadata nested)": (lambda: idx.add(v, texts=["t"],
                                                 metadata=[{"x": deep_value()}]),
                                 InvalidInput, nested),
        "add(metadata key int)": (lambda: idx.add(v, texts=["t"],
                                                  metadata=[{"x": {1: "a"}}]), InvalidInput,
                                  "keys must be str"),
        "add(metadata surrogate)": (lambda: idx.add(v, texts=["t"],
                                                    metadata=[{"x": [SURROGATE]}]),
                                    InvalidInput, surrogate),
        "add(metadata surrogate key)": (lambda: idx.add(v, texts=["t"],
                                                        metadata=[{SURROGATE: 1}]),
                                        InvalidInput, surrogate),
        "add(metadata NaN)": (lambda: idx.add(v, texts=["t"], metadata=[{"x": [np.nan]}]),
                              InvalidInput, "JSON"),
        "add(metadata huge int)": (lambda: idx.add(v, texts=["t"], metadata=[{"n": 2**70}]),
                                   InvalidInput, "int64"),
        "add(texts surrogate)": (lambda: idx.add(v, texts=[SURROGATE]), InvalidInput,
                                 surrogate),
        "add(ids surrogate)": (lambda: idx.add(v, ids=[SURROGATE], texts=["t"]),
                               InvalidInput, surrogate),
        "add(ids huge int)": (lambda: idx.add(v, ids=[2**70], texts=["t"]), InvalidInput,
                              "int64"),
        "add(vectors NaN)": (lambda: idx.add(np.full((1, 8), np.nan), texts=["t"]),
                             InvalidInput, "NaN"),
        "get(surrogate)": (lambda: idx.get(SURROGATE), InvalidInput, surrogate),
        "get(huge int)": (lambda: idx.get(2**70), InvalidInput, "int64"),
        "delete(surrogate)": (lambda: idx.delete([SURROGATE]), InvalidInput, surrogate),
        "calibrate(target NaN)": (lambda: idx.calibrate(target=float("nan")), InvalidInput,
                                  "target"),
        "calibrate(k huge)": (lambda: idx.calibrate(k=2**70), InvalidInput, "rows"),
        "create(user_metadata nested)": (lambda: edgevec.Index.create(
            other, dim=8, user_metadata={"a": deep_value()}), InvalidInput, nested),
        "create(user_metadata surrogate)": (lambda: edgevec.Index.create(
            other, dim=8, user_metadata={"a": SURROGATE}), InvalidInput, surrogate),
        "create(lock_timeout NaN)": (lambda: edgevec.Index.create(
            other, dim=8, lock_timeout=float("nan")), InvalidInput, "lock_timeout"),
        "open(lock_timeout x)": (lambda: edgevec.open(path, writable=True, lock_timeout="x"),
                                 InvalidInput, "lock_timeout"),
        "open(lock_timeout NaN)": (lambda: edgevec.open(path, writable=True,
                                                        lock_timeout=float("nan")),
                                   InvalidInput, "lock_timeout"),
        "open(lock_timeout inf)": (lambda: edgevec.open(path, writable=True,
                                                        lock_timeout=float("inf")),
                                   InvalidInput, "lock_timeout"),
        "open(lock_timeout -1)": (lambda: edgevec.open(path, writable=True, lock_timeout=-1),
                                  InvalidInput, "lock_timeout"),
        "open(lock_timeout True)": (lambda: edgevec.open(path, writable=True,
                                                         lock_timeout=True), InvalidInput,
                                    "lock_timeout"),
        "open_many(search filter nested)": (lambda: edgevec.open_many([path, path]).search(
            q, filter=deep_filter()), InvalidInput, nested),
        "merge(overwrite x)": (lambda: edgevec.merge([path], other, overwrite="x"),
                               InvalidInput, "overwrite"),
        "write_manifest(name)": (lambda: edgevec.write_manifest(
            tmp_path / "s.txt", [path]), InvalidInput, ".shards"),
        "compact(lexical)": (lambda: idx.compact(lexical="x"), InvalidInput, "lexical"),
        "open(surrogate path)": (lambda: edgevec.open(bad_path), InvalidInput, "encoded"),
        "info(surrogate path)": (lambda: edgevec.info(bad_path), InvalidInput, "encoded"),
        "verify(surrogate path)": (lambda: edgevec.verify(bad_path), InvalidInput, "encoded"),
        "open_many(surrogate path)": (lambda: edgevec.open_many([bad_path]), InvalidInput,
                                      "encoded"),
        "merge(surrogate output)": (lambda: edgevec.merge([path], bad_path), InvalidInput,
                                    "encoded"),
        "write_manifest(surrogate)": (lambda: edgevec.write_manifest(
            bad_path + ".shards", [path]), InvalidInput, "encoded"),
        "build(surrogate output)": (lambda: build([path], bad_path, lexical_only=True),
                                    InvalidInput, "encoded"),
        "build(max_words NaN)": (lambda: build([path], other, lexical_only=True,
                                               max_words=float("nan")), InvalidInput,
                                 "max_words"),
        "convert(surrogate output)": (lambda: convert(path, bad_path), InvalidInput,
                                      "encoded"),
        "convert(limit NaN)": (lambda: convert(path, other, limit=float("nan")), InvalidInput,
                               "limit"),
    }


def test_hostile_inputs_raise_their_exact_error_at_every_entry_point(text_index, tmp_path):
    leaks = []
    with edgevec.open(text_index, writable=True) as idx:
        for name, (call, expected, says) in _battery(idx, text_index, tmp_path).items():
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - what the test is looking for
                if type(exc) is not expected or says not in str(exc):
                    leaks.append(f"{name}: {type(exc).__name__}: {str(exc)[:100]}")
                elif len(str(exc)) > 400:
                    leaks.append(f"{name}: an unreadable message: {str(exc)[:100]}")
            else:
                leaks.append(f"{name}: no error")
        assert len(idx) == 2000  # nothing of a refused batch was written
    assert not os.path.exists(tmp_path / "new.edgevec")
    assert not leaks, "\n".join(leaks)


def test_messages_name_the_value_the_limit_and_the_fix(text_index):
    with edgevec.open(text_index) as idx:
        q = batch_vectors(1, 1, 8)[0]
        exc = raises_exactly(InvalidInput, lambda: idx.search(q, filter=deep_filter()))
        assert "64 levels" in str(exc) and "flatter" in str(exc)
        exc = raises_exactly(InvalidInput, lambda: idx.search(q, filter={7: 1}))
        assert "int 7" in str(exc) and "must be a str" in str(exc)
        exc = raises_exactly(InvalidInput, lambda: idx.search(["a", SURROGATE],
                                                              mode="lexical"))
        assert "query[1]" in str(exc) and "'\\ud800' at character 3" in str(exc)
        exc = raises_exactly(InvalidInput, lambda: idx.search(q, threads=2.5))
        assert "threads" in str(exc) and "2.5" in str(exc) and "positive int" in str(exc)
    with edgevec.open(text_index, writable=True) as idx:
        exc = raises_exactly(InvalidInput, lambda: idx.add(
            batch_vectors(3, 2, 8), texts=["a", "b"], metadata=[None, {"x": deep_value()}]))
        assert str(exc).startswith("metadata[1]['x']['a'][0]") and "64 levels" in str(exc)
        exc = raises_exactly(InvalidInput, lambda: idx.add(
            batch_vectors(3, 1, 8), texts=["t"], metadata=[{"x": {"y": [1, SURROGATE]}}]))
        assert str(exc).startswith("metadata[0]['x']['y'][1] holds a lone surrogate")
    exc = raises_exactly(InvalidInput, lambda: edgevec.open(text_index, writable=True,
                                                             lock_timeout=float("nan")))
    assert "lock_timeout" in str(exc) and ">= 0" in str(exc) and "nan" in str(exc)


@pytest.mark.parametrize("mode", ["lexical", "dense", "hybrid", "exact", "batch", "shards"])
def test_a_huge_k_is_capped_by_the_live_rows_before_any_allocation(text_index, mode,
                                                                    monkeypatch):
    """Regression: lexical k=2**62 and k=10**9 on a 2,000-row index allocated 8.7 GB (a
    heap of k entries) for 8 s. k (and m) are cut to the live rows first, in every mode;
    the Numba path (where the heap was) is forced here."""
    import tracemalloc

    from edgevec.search import ENGINE
    monkeypatch.setattr(ENGINE, "mode", "numba")
    q = batch_vectors(1, 2, 8)
    with edgevec.open(text_index) as idx, edgevec.open_many([text_index]) as many:
        call = {"lexical": lambda k: idx.search("alpha word3", mode="lexical", k=k),
                "dense": lambda k: idx.search(q[0], k=k, m=k),
                "hybrid": lambda k: idx.search(q[0], text="word3", k=k),
                "exact": lambda k: idx.search(q[0], k=k, exact=True),
                "batch": lambda k: idx.search(["alpha", "beta"], mode="lexical", k=k),
                "shards": lambda k: many.search("alpha word3", mode="lexical", k=k)}[mode]
        call(10)  # compiled before measuring
        for k in (10**9, 2**62):
            tracemalloc.start()
            try:
                found = call(k)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 64 << 20, f"k={k}: {peak:,} bytes"
            hits = found[0] if mode == "batch" else found
            assert len(hits) == 2000


def test_a_filter_nested_too_deep_is_one_line_from_the_cli(text_index, capsys):
    text = '{"$not": ' * DEEP + '{"n": 1}' + "}" * DEEP
    assert cli.main(["search", text_index, "alpha", "--mode", "lexical",
                     "--filter", text]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgevec: --filter nests too deep") and err.count("\n") == 1
    text = '{"$not": ' * 100 + '{"n": 1}' + "}" * 100  # parses, over the limit
    assert cli.main(["search", text_index, "alpha", "--mode", "lexical",
                     "--filter", text]) == 1
    assert "64 levels" in capsys.readouterr().err


def test_records_nested_too_deep_or_with_lone_surrogates_are_skipped(tmp_path):
    """A JSONL record nested 10,000 deep (json.loads raised RecursionError out of `edgevec
    build`), one with metadata over the limit and ones with a lone surrogate (a JSON
    escape such as "\\ud800" decodes to one) in the text, the id or the metadata: each
    is a counted skip naming its line, the good records are built."""
    import json as json_
    src = tmp_path / "r.jsonl"
    lines = ['{"id": "ok", "text": "a good record"}',
             '{"id": "deep", "text": "x", "m": ' + "[" * DEEP + "]" * DEEP + "}",
             json_.dumps({"id": "over", "text": "x", "m": deep_value(100)}),
             '{"id": "s1", "text": "caf\\ud800"}', '{"id": "caf\\ud800", "text": "x"}',
             '{"id": "s3", "text": "x", "tag": ["\\ud800"]}']
    src.write_text("\n".join(lines) + "\n")
    from edgevec.build import build
    report = build([str(src)], str(tmp_path / "r.edgevec"), lexical_only=True, quiet=True)
    assert report.documents == 1 and report.skipped == 5
    with edgevec.open(tmp_path / "r.edgevec") as idx:
        assert idx.ids() == ["ok"]


@needs_fifo
def test_a_fifo_as_an_input_or_an_output_never_hangs(text_index, tmp_path):
    """Regression: a FIFO (or any non-regular file) among the inputs hung the call, and
    overwrite would have replaced one by a file. Each entry point that opens a user's
    file refuses it by its kind."""
    from edgevec.build import build
    from edgevec.convert import convert
    with fifo(tmp_path / "f.edgevec") as f:
        exc = raises_exactly(edgevec.IndexExists, lambda: edgevec.Index.create(f, dim=8))
        assert "FIFO" in str(exc)
        raises_exactly(edgevec.IndexExists, lambda: edgevec.Index.create(
            f, dim=8, overwrite=True), match="FIFO")
        raises_exactly(edgevec.NotAnEdgevecFile, lambda: edgevec.open(f, writable=True),
                       match="FIFO")
        raises_exactly(edgevec.IndexExists, lambda: build(
            [text_index], f, overwrite=True, lexical_only=True), match="FIFO")
        raises_exactly(edgevec.IndexExists, lambda: edgevec.merge(
            [text_index], f, overwrite=True), match="FIFO")
        raises_exactly(edgevec.IndexExists, lambda: convert(
            text_index, f, overwrite=True), match="FIFO")
        assert stat.S_ISFIFO(os.stat(f).st_mode)  # never replaced
    with fifo(tmp_path / "s.jsonl") as f:
        raises_exactly(InvalidInput, lambda: build([f], str(tmp_path / "b.edgevec"),
                                                   lexical_only=True), match="FIFO")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("a passage about fifos")
    with fifo(folder / "b.txt"):  # inside a folder: a counted skip
        report = build([str(folder)], str(tmp_path / "d.edgevec"), lexical_only=True,
                       quiet=True)
        assert report.documents == 1 and report.skipped == 1
    with fifo(tmp_path / "v.txt") as f:
        raises_exactly(InvalidInput, lambda: convert(f, str(tmp_path / "c.edgevec")),
                       match="FIFO")
    with fifo(tmp_path / "v.npy") as f:
        raises_exactly(InvalidInput, lambda: convert(f, str(tmp_path / "c.edgevec"),
                                                     ids_path=f), match="FIFO")
    with fifo(tmp_path / "set.shards") as f:
        raises_exactly(InvalidInput, lambda: edgevec.open_many([f]), match="FIFO")
        raises_exactly(InvalidInput, lambda: edgevec.merge([f], str(tmp_path / "m.edgevec")),
                       match="FIFO")
        exc = raises_exactly(edgevec.IndexExists, lambda: edgevec.write_manifest(
            f, [text_index]))
        assert "FIFO" in str(exc) and stat.S_ISFIFO(os.stat(f).st_mode)


@needs_fifo
def test_cli_commands_on_a_fifo_answer_exit_1(text_index, tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "x", "text": "some text"}\n')
    with fifo(tmp_path / "f.edgevec") as f, fifo(tmp_path / "f.jsonl") as src, \
            fifo(tmp_path / "f.shards") as manifest:
        for argv in (["build", src, "-o", str(tmp_path / "o.edgevec"), "--lexical-only"],
                     ["build", str(corpus), "-o", f, "--lexical-only", "--overwrite"],
                     ["convert", src, "-o", str(tmp_path / "o.edgevec")],
                     ["add", text_index, src], ["delete", f, "x"], ["compact", f],
                     ["search", manifest, "q"], ["merge", manifest, "-o", str(tmp_path / "m")]):
            assert cli.main(argv) == 1, argv
            err = capsys.readouterr().err
            assert err.startswith("edgevec: ") and "FIFO" in err and err.count("\n") == 1, \
                (argv, err)


# Snapshot open (edgevec.storage.reader) and Embedder.encode are the lead's: these flip
# to passing when his fixes are merged (a FIFO: NotAnEdgevecFile naming its kind, as for a
# directory; a lone surrogate in encode: InvalidInput).

@needs_fifo
@pytest.mark.parametrize("entry", ["open", "info", "verify", "open_many", "merge"])
def test_reading_a_fifo_as_an_index_is_refused(tmp_path, entry):
    with fifo(tmp_path / "f.edgevec") as f:
        call = {"open": lambda: edgevec.open(f), "info": lambda: edgevec.info(f),
                "verify": lambda: edgevec.verify(f), "open_many": lambda: edgevec.open_many([f]),
                "merge": lambda: edgevec.merge([f], str(tmp_path / "m.edgevec"))}[entry]
        raises_exactly(edgevec.NotAnEdgevecFile, call, match="FIFO")


@needs_fifo
@pytest.mark.parametrize("command", ["info", "verify", "search"])
def test_cli_reading_a_fifo_as_an_index_says_so(tmp_path, capsys, command):
    with fifo(tmp_path / "f.edgevec") as f:
        argv = [command, f] + (["q"] if command == "search" else [])
        assert cli.main(argv) == 1
        assert "FIFO" in capsys.readouterr().err


def test_a_lone_surrogate_in_embedder_encode_is_invalid_input(minilm):
    raises_exactly(InvalidInput, lambda: minilm.encode(["fine", SURROGATE]))
