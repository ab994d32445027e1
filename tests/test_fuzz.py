"""Fuzz: seeded random damage to valid files raises only EdgevecError subclasses.

Never a crash, a hang, a MemoryError, or another exception type (IndexError, ValueError,
UnicodeDecodeError, ...). Three kinds of damage: raw byte flips and truncations (mostly
caught by checksums), edits of the JSON directory with checksums re-stamped (so the
structural rules are what must catch them), and byte flips inside sections with their
checksums re-stamped (so row-level reads and verify must catch them).
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal

import numpy as np
import pytest

import edgevec
from edgevec.storage.layout import crc32
from helpers import read_directory, rewrite_directory

SOURCES = ["str-ids", "int-ids", "compacted", "empty", "lexical", "lexical-only", "compact",
           "prefix-float8", "pca"]


class Hang(BaseException):
    pass


def _alarm(signum, frame):
    raise Hang()


def exercise(path: str) -> None:
    """Everything a reader may do with a file."""
    edgevec.info(path)
    with edgevec.open(path) as idx:
        len(idx)
        repr(idx)
        for ident in idx.ids()[:20]:  # (the compact file has 1,023 rows)
            idx.get(ident)
            ident in idx
        if idx.dim:
            idx.search(np.ones(idx.dim, np.float32), k=3)
        if idx.info()["lexical"]:
            idx.search(["quick dog", "中文 fox"], k=3, mode="lexical")
        idx.verify()


def check(path: str) -> None:
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        exercise(path)
    except edgevec.EdgevecError:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


@pytest.fixture(autouse=True, params=["numba", "numpy"])
def _timer(request, monkeypatch):
    """Each fuzz runs once per scan engine: a fresh process scans with NumPy first, a warm
    one with the Numba kernels, and damage must stop before either."""
    from edgevec import search
    monkeypatch.setattr(search.ENGINE, "mode", request.param)
    old = signal.signal(signal.SIGALRM, _alarm)
    yield
    signal.signal(signal.SIGALRM, old)


def _copy(golden_dir, tmp_path, name) -> tuple[str, bytes]:
    src = os.path.join(golden_dir, name + ".edgevec")
    dst = str(tmp_path / "fuzz.edgevec")
    shutil.copyfile(src, dst)
    return dst, open(src, "rb").read()


@pytest.mark.slow
@pytest.mark.parametrize("name", SOURCES)
def test_fuzz_raw_bytes(golden_dir, tmp_path, name):
    path, original = _copy(golden_dir, tmp_path, name)
    rnd = random.Random(f"raw-{name}")
    for _ in range(600):
        data = bytearray(original)
        action = rnd.random()
        if action < 0.6:
            for _ in range(rnd.randint(1, 4)):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif action < 0.8:
            del data[rnd.randrange(len(data)):]
        else:
            at = rnd.randrange(len(data))
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
        with open(path, "wb") as f:
            f.write(data)
        check(path)


def _mutate_json(value, rnd: random.Random):
    """Return a damaged copy of one JSON value."""
    choices = [None, -1, 0, 1, 2**31, 2**64, 10**30, 1.5, "x", "", [], {}, [1, 2], True]
    if isinstance(value, bool) or value is None:
        return rnd.choice(choices)
    if isinstance(value, int):
        return rnd.choice([value + 1, value - 1, value + 64, value * 2, -value,
                           value + 2**40, rnd.choice(choices)])
    if isinstance(value, str):
        return rnd.choice([value + "x", "", "binary", "<f4", "|u1", "tombstones",
                           rnd.choice(choices)])
    if isinstance(value, list):
        if value and rnd.random() < 0.5:
            value = list(value)
            del value[rnd.randrange(len(value))]
            return value
        return rnd.choice(choices)
    return rnd.choice(choices)


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@pytest.mark.slow
@pytest.mark.parametrize("name", SOURCES)
def test_fuzz_directory_fields(golden_dir, tmp_path, name):
    path, original = _copy(golden_dir, tmp_path, name)
    doc, _ = read_directory(path)
    paths = list(_paths(doc))
    rnd = random.Random(f"dir-{name}")
    for _ in range(500):
        with open(path, "wb") as f:
            f.write(original)
        new = copy.deepcopy(doc)
        for _ in range(rnd.randint(1, 3)):
            where = rnd.choice(paths)
            try:
                parent = new
                for key in where[:-1]:
                    parent = parent[key]
                if rnd.random() < 0.15 and isinstance(parent, dict):
                    parent.pop(where[-1], None)
                else:
                    parent[where[-1]] = _mutate_json(parent[where[-1]], rnd)
            except (KeyError, IndexError, TypeError):
                continue
        rewrite_directory(path, None, raw=json.dumps(new).encode())
        check(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["str-ids", "compacted", "int-ids", "lexical",
                                  "lexical-only", "compact", "prefix-float8", "pca"])
def test_fuzz_section_bytes_with_valid_checksums(golden_dir, tmp_path, name):
    path, original = _copy(golden_dir, tmp_path, name)
    doc, _ = read_directory(path)
    sections = [s for s in doc["sections"] if s["length"]]
    rnd = random.Random(f"sec-{name}")
    for _ in range(500):
        data = bytearray(original)
        new = copy.deepcopy(doc)
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(len(sections))
            s = sections[i]
            at = s["offset"] + rnd.randrange(s["length"])
            data[at] = rnd.choice([0, 0xFF, 0x7F, 0x80, rnd.randrange(256)])
            new["sections"][doc["sections"].index(s)]["crc32"] = crc32(
                bytes(data[s["offset"]:s["offset"] + s["length"]]))
        with open(path, "wb") as f:
            f.write(data)
        rewrite_directory(path, None, raw=json.dumps(new).encode())
        check(path)
