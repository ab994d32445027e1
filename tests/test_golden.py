"""Golden files: the writer reproduces them byte for byte; the reader returns their rows."""

from __future__ import annotations

import json
import os
import runpy

import pytest

import edgevec

NAMES = ["empty", "int-ids", "str-ids", "compacted", "lexical", "lexical-only", "compact",
         "prefix-float8", "pca"]
V1_0 = ["empty", "int-ids", "str-ids", "compacted"]  # format 1.0: v1.0/, read, never written


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    script = os.path.join(os.path.dirname(__file__), "..", "formats", "golden",
                          "make_golden.py")
    runpy.run_path(script)["build"](str(out))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_writer_reproduces_golden_bytes(rebuilt, golden_dir, name):
    committed = open(os.path.join(golden_dir, name + ".edgevec"), "rb").read()
    assert (rebuilt / (name + ".edgevec")).read_bytes() == committed


@pytest.mark.parametrize("name", NAMES + [f"v1.0/{n}" for n in V1_0])
def test_reader_returns_golden_rows(golden_dir, name):
    path = os.path.join(golden_dir, name + ".edgevec")
    want = json.load(open(os.path.join(golden_dir, name + ".expected.json"), encoding="utf-8"))
    edgevec.verify(path)
    with edgevec.open(path) as idx:
        info = idx.info()
        for key, value in want["info"].items():
            assert info[key] == value, key
        assert len(idx) == len(want["rows"])
        assert idx.ids() == [r["id"] for r in want["rows"]]
        for row in want["rows"]:
            rec = idx.get(row["id"])
            assert rec.text == row["text"] and rec.metadata == row["metadata"]
            assert [float(v) for v in rec.vector] == row["vector"]


def test_golden_header_bytes_are_as_specified(golden_dir):
    old = open(os.path.join(golden_dir, "v1.0", "empty.edgevec"), "rb").read()
    assert old[8:12] == bytes([1, 0, 0, 0])           # major 1, minor 0 (u16 LE each)
    raw = open(os.path.join(golden_dir, "empty.edgevec"), "rb").read()
    assert raw[:8] == b"\x89EDGEVEC"
    assert raw[8:12] == bytes([1, 0, 1, 0])           # major 1, minor 1
    assert raw[12:16] == (1536).to_bytes(4, "little")  # data start
    assert raw[16:20] == (64).to_bytes(4, "little")    # alignment
    assert raw[512:520] == b"EVCOMMIT" and raw[1024:1032] == bytes(8)
