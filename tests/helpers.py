"""Helpers shared by tests: deterministic batches and byte-level file surgery."""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from edgevec.storage.layout import ALIGN, SLOT_OFFSETS, align_up, crc32, pack_slot
from edgevec.storage.reader import read_header


def batch_vectors(batch: int, n: int, dim: int) -> np.ndarray:
    """The vectors of batch number `batch`: a pure function of its arguments."""
    return np.random.default_rng(10_000 + batch).normal(size=(n, dim)).astype(np.float32)


def batch_ids(batch: int, n: int) -> list[str]:
    return [f"b{batch}-r{i}" for i in range(n)]


def read_directory(path: str) -> tuple[dict, object]:
    fd = os.open(path, os.O_RDONLY)
    try:
        h = read_header(fd, path)
        raw = os.pread(fd, h.slot.dir_length, h.slot.dir_offset)
    finally:
        os.close(fd)
    return json.loads(raw), h


def rewrite_directory(path: str, edit, *, raw: bytes | None = None) -> None:
    """Commit an edited copy of the newest directory with valid checksums, so that the
    rule under test (not a CRC) is what catches the damage. `edit(doc)` changes it in
    place; `raw` replaces the JSON bytes entirely."""
    doc, h = read_directory(path)
    if raw is None:
        edit(doc)
        raw = json.dumps(doc).encode()
    size = os.path.getsize(path)
    pos = align_up(size, ALIGN)
    with open(path, "r+b") as f:
        f.seek(size)
        f.write(bytes(pos - size))
        f.write(raw)
        end = pos + len(raw)
        f.seek(SLOT_OFFSETS[1 - h.slot.index])
        f.write(pack_slot(h.slot.generation + 1, pos, len(raw), end, crc32(raw)))


def patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def patch_section(path: str, kind: str, rel: int, data: bytes, segment: int | None = 0) -> None:
    """Overwrite bytes inside a section and commit a directory with its checksum fixed,
    so the damage is caught by the rule under test rather than by the CRC."""
    doc, _ = read_directory(path)
    sec = next(s for s in doc["sections"] if s["kind"] == kind and s.get("segment") == segment)
    patch(path, sec["offset"] + rel, data)
    with open(path, "rb") as f:
        f.seek(sec["offset"])
        value = crc32(f.read(sec["length"]))

    def edit(d):
        for s in d["sections"]:
            if s["kind"] == kind and s.get("segment") == segment:
                s["crc32"] = value
    rewrite_directory(path, edit)


def import_error_without(module: str, blocked: str) -> str:
    """What importing `module` prints in a fresh interpreter where package `blocked` cannot
    be imported: "<exception type> <message>"."""
    import subprocess
    import sys
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            f"try:\n    import {module}\n"
            "except Exception as e:\n    print(type(e).__name__, e)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout
