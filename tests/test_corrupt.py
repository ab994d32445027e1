"""The corrupt-file taxonomy of formats/CORRUPT.md: each case raises its named error.

Every case starts from a copy of a golden file and damages exactly one thing. Where a
checksum would otherwise catch the damage first, the case re-stamps the checksums (see
helpers.rewrite_directory) so that the rule under test is the one that fires.
"""

from __future__ import annotations

import os
import shutil
import struct

import numpy as np
import pytest

import edgevec
from edgevec import errors as E
from edgevec.storage.layout import SLOT_OFFSETS, crc32
from helpers import patch, patch_section, read_directory, rewrite_directory


def _preamble(path, **fields):
    raw = bytearray(open(path, "rb").read(64))
    for offset, fmt, value in fields.values():
        struct.pack_into(fmt, raw, offset, value)
    struct.pack_into("<I", raw, 60, crc32(bytes(raw[:60])))
    patch(path, 0, bytes(raw))


def _section(doc, kind, segment=0):
    return next(s for s in doc["sections"] if s["kind"] == kind and s.get("segment") == segment)


def _set(kind, key, fn, segment=0):
    def edit(doc):
        s = _section(doc, kind, segment)
        s[key] = fn(s[key], doc)
    return edit


def _overlap(doc):
    a, b = _section(doc, "int8"), _section(doc, "binary")
    b["offset"] = a["offset"]
    b["crc32"] = a["crc32"]


def _drop(kind):
    def edit(doc):
        doc["sections"].remove(_section(doc, kind))
    return edit


def _truncate(at):
    def mutate(path):
        with open(path, "r+b") as f:
            f.truncate(at(os.path.getsize(path)))
    return mutate


def _nested(path):
    rewrite_directory(path, None, raw=b"[" * 100_000 + b"]" * 100_000)


def _tomb_value(path):
    patch_section(path, "tombstones", 0, struct.pack("<Q", 10**6), segment=None)


def _huge_directory(path):
    """A commit slot claiming a 65 MiB directory of a file made sparse to hold it: open
    read the whole claim (1.5 GiB took 18 s, 1 TiB raised MemoryError) before its CRC
    failed. F9 refuses it before reading."""
    _, h = read_directory(path)
    length = (65 << 20)
    end = h.slot.dir_offset + length
    with open(path, "r+b") as f:
        f.truncate(end)
    patch_slot(path, dir_length=length, committed_length=end)


def _string_offsets(path):
    patch_section(path, "texts.offsets", 8 * 3, struct.pack("<Q", 10**9))


# name -> (mutation(path), error, stage): stage "open" fails at edgevec.open, "verify" opens
# but fails edgevec.verify, "access" fails when the damaged rows are read.
CASES = {
    "bad-magic": (lambda p: patch(p, 0, b"GGUF\x00\x00\x00\x00"), E.NotAnEdgevecFile, "open"),
    "text-file": (lambda p: open(p, "w").write("hello, I am text\n" * 200), E.NotAnEdgevecFile,
                  "open"),
    "future-major": (lambda p: _preamble(p, v=(8, "<H", 2)), E.UnsupportedVersion, "open"),
    "header-checksum": (lambda p: patch(p, 20, b"\x01"), E.ChecksumMismatch, "open"),
    "header-data-start": (lambda p: _preamble(p, v=(12, "<I", 4096)), E.HeaderError, "open"),
    "header-alignment": (lambda p: _preamble(p, v=(16, "<I", 8)), E.HeaderError, "open"),
    "both-slots-damaged": (lambda p: (patch(p, SLOT_OFFSETS[0] + 9, b"\xff"),
                                      patch(p, SLOT_OFFSETS[1] + 9, b"\xff")),
                           E.HeaderError, "open"),
    "truncated-in-header": (_truncate(lambda n: 700), E.TruncatedFile, "open"),
    "truncated-in-data": (_truncate(lambda n: n - 100), E.TruncatedFile, "open"),
    "truncated-to-preamble": (_truncate(lambda n: 30), E.TruncatedFile, "open"),
    "directory-checksum": (lambda p: patch(p, read_directory(p)[1].slot.dir_offset + 3, b"#"),
                           E.ChecksumMismatch, "open"),
    "directory-not-json": (lambda p: rewrite_directory(p, None, raw=b"{not json"),
                           E.MalformedDirectory, "open"),
    "directory-not-utf8": (lambda p: rewrite_directory(p, None, raw=b'{"meta": "\xff"}'),
                           E.MalformedDirectory, "open"),
    "directory-deeply-nested": (_nested, E.MalformedDirectory, "open"),
    "directory-missing-key": (lambda p: rewrite_directory(p, lambda d: d["meta"].pop("dim")),
                              E.MalformedDirectory, "open"),
    "directory-wrong-type": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(rows="10")), E.MalformedDirectory, "open"),
    "rows-disagree": (lambda p: rewrite_directory(p, lambda d: d["meta"].update(rows=11)),
                      E.MalformedDirectory, "open"),
    "unknown-section-kind": (lambda p: rewrite_directory(
        p, _set("binary", "kind", lambda v, d: "hologram")), E.MalformedDirectory, "open"),
    "missing-required-section": (lambda p: rewrite_directory(p, _drop("idkeys")),
                                 E.MalformedDirectory, "open"),
    "bad-dtype": (lambda p: rewrite_directory(p, _set("int8", "dtype", lambda v, d: "<f4")),
                  E.MalformedDirectory, "open"),
    "misaligned-section": (lambda p: rewrite_directory(
        p, _set("int8", "offset", lambda v, d: v + 8)), E.SectionMisaligned, "open"),
    "section-out-of-bounds": (lambda p: rewrite_directory(
        p, _set("int8", "offset", lambda v, d: v + 2**40)), E.SectionOutOfBounds, "open"),
    "section-before-data": (lambda p: rewrite_directory(
        p, _set("int8", "offset", lambda v, d: 64)), E.SectionOutOfBounds, "open"),
    "overlapping-sections": (lambda p: rewrite_directory(p, _overlap), E.SectionOverlap, "open"),
    "wrong-length": (lambda p: rewrite_directory(
        p, _set("int8", "length", lambda v, d: v - 72)), E.SectionLengthMismatch, "open"),
    "wrong-shape": (lambda p: rewrite_directory(
        p, _set("int8", "shape", lambda v, d: [v[0] * 2, v[1] // 2])),
                    E.SectionLengthMismatch, "open"),
    "slot-points-outside": (lambda p: patch_slot(p, dir_offset=2**40), E.HeaderError, "open"),
    "directory-over-limit": (_huge_directory, E.HeaderError, "open"),
    # a calibrated m sizes the candidate buffers of every search: bounded at open (D17)
    "rescore-m-too-large": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(rescore_m=2**40)), E.MalformedDirectory, "open"),
    "section-checksum": (lambda p: patch(p, _section(read_directory(p)[0], "int8")["offset"],
                                         b"\x7f\x7f"), E.ChecksumMismatch, "verify"),
    "string-table-offsets": (_string_offsets, E.StringTableError, "verify"),
    "tombstone-out-of-range": (_tomb_value, E.SectionOutOfBounds, "access"),
}


def _df_shorter(doc):
    s = _section(doc, "lex.df")
    s["shape"], s["length"] = [s["shape"][0] - 1], s["length"] - 4


# the same, on the golden file with lexical postings (format 1.1)
LEXICAL_CASES = {
    "lexical-incomplete": (lambda p: rewrite_directory(p, _drop("lex.df")),
                           E.MalformedDirectory, "open"),
    "lexical-term-count": (lambda p: rewrite_directory(p, _df_shorter),
                           E.SectionLengthMismatch, "open"),
    "lexical-without-meta": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(lexical=None)), E.MalformedDirectory, "open"),
    "lexical-bad-parameters": (lambda p: rewrite_directory(
        p, lambda d: d["meta"]["lexical"]["rrf"].update(depth=0)), E.MalformedDirectory,
                               "open"),
    # rrf.k = 2**31 passed and overflowed int32 at the first hybrid search; a huge depth
    # sizes the dense list of every hybrid search (D17)
    "lexical-rrf-k-too-large": (lambda p: rewrite_directory(
        p, lambda d: d["meta"]["lexical"]["rrf"].update(k=2**31)), E.MalformedDirectory,
                                "open"),
    "lexical-rrf-depth-too-large": (lambda p: rewrite_directory(
        p, lambda d: d["meta"]["lexical"]["rrf"].update(depth=2**31)), E.MalformedDirectory,
                                    "open"),
    "lexical-postings-damaged": (lambda p: patch_section(p, "lex.post.data", 0, b"\x00"),
                                 E.FormatError, "verify"),
    "lexical-norms-disagree": (lambda p: patch_section(p, "lex.norms", 0, b"\xc8"),
                               E.FormatError, "verify"),
}


def _add_calibration(doc):
    doc["sections"].append(dict(_section(doc, "lex.totals"), kind="calibration",
                                dtype="<f4", shape=[2, 0], length=0, crc32=0))
    del doc["sections"][-1]["segment"]


# the same, on the lexical-only golden file (format 1.2, dim 0)
LEXICAL_ONLY_CASES = {
    "lexical-only-without-meta": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(lexical=None)), E.MalformedDirectory, "open"),
    "lexical-only-with-codecs": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(codecs=["binary", "int8"])), E.MalformedDirectory,
                                 "open"),
    "lexical-only-with-calibration": (lambda p: rewrite_directory(p, _add_calibration),
                                      E.MalformedDirectory, "open"),
    "lexical-only-claims-vectors": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(dim=8, codecs=["binary", "int8"])),
                                    E.MalformedDirectory, "open"),
}


def _model_shape(doc):
    s = _section(doc, "transform.model", None)
    s["shape"], s["length"] = [s["shape"][0] - 1, s["shape"][1]], s["length"] - 4 * s["shape"][1]


# the same, on the compact golden file (format 1.3, transform codes)
COMPACT_CASES = {
    "compact-model-nan": (lambda p: patch_section(p, "transform.model", 40,
                                                  struct.pack("<f", float("nan")), None),
                          E.FormatError, "search"),
    "compact-model-scale-zero": (lambda p: patch_section(p, "transform.model", 32, b"\0" * 4,
                                                         None), E.FormatError, "search"),
    "compact-model-wrong-shape": (lambda p: rewrite_directory(p, _model_shape),
                                  E.SectionLengthMismatch, "open"),
    "compact-codes-wrong-shape": (lambda p: rewrite_directory(
        p, _set("transform", "shape", lambda v, d: [v[0] * 2, v[1] // 2])),
                                  E.SectionLengthMismatch, "open"),
    "compact-bad-bits": (lambda p: rewrite_directory(
        p, lambda d: d["meta"]["transform"].update(bits=[7] * 8)), E.MalformedDirectory,
                         "open"),
    "compact-mixed-codecs": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(codecs=["transform", "int8"])), E.MalformedDirectory,
                             "open"),
    "compact-without-model": (lambda p: rewrite_directory(p, lambda d: d["sections"].remove(
        _section(d, "transform.model", None))), E.MalformedDirectory, "open"),
    "compact-without-meta": (lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(transform=None)), E.MalformedDirectory, "open"),
}


@pytest.mark.parametrize("case", sorted(COMPACT_CASES))
def test_corrupt_compact_case_raises_its_error(tmp_path, golden_dir, case):
    p = str(tmp_path / "victim.edgevec")
    shutil.copyfile(os.path.join(golden_dir, "compact.edgevec"), p)
    _raises(p, *COMPACT_CASES[case])


def _reshape(kind, segment=0):
    """A section's shape halved in columns, doubled in rows (the same bytes)."""
    return _set(kind, "shape", lambda v, d: [v[0] * 2, v[1] // 2], segment)


# format 1.4: float8 codes and projections, on the prefix-float8 and pca golden files
PROJECTED_CASES = {
    "float8-scale-nan": ("prefix-float8", lambda p: patch_section(
        p, "float8.scale", 4, struct.pack("<f", float("nan")), None), E.FormatError, "search"),
    "float8-scale-zero": ("prefix-float8", lambda p: patch_section(
        p, "float8.scale", 0, b"\0" * 4, None), E.FormatError, "search"),
    "float8-nan-code": ("prefix-float8", lambda p: patch_section(p, "float8", 2, b"\x7f"),
                        E.FormatError, "verify"),
    "float8-codes-wrong-shape": ("prefix-float8", lambda p: rewrite_directory(
        p, _reshape("float8")), E.SectionLengthMismatch, "open"),
    "float8-without-scale": ("prefix-float8", lambda p: rewrite_directory(
        p, lambda d: d["sections"].remove(_section(d, "float8.scale", None))),
        E.MalformedDirectory, "open"),
    "float8-scale-without-codes": ("prefix-float8", lambda p: rewrite_directory(
        p, lambda d: d["meta"].update(codecs=["binary", "int8"])), E.MalformedDirectory,
        "open"),
    "prefix-claims-pca": ("prefix-float8", lambda p: rewrite_directory(
        p, lambda d: d["meta"]["projection"].update(kind="pca")), E.MalformedDirectory,
        "open"),
    "projection-dims-too-large": ("prefix-float8", lambda p: rewrite_directory(
        p, lambda d: d["meta"]["projection"].update(dims=8)), E.MalformedDirectory, "open"),
    "projection-unknown-kind": ("pca", lambda p: rewrite_directory(
        p, lambda d: d["meta"]["projection"].update(kind="random")), E.MalformedDirectory,
        "open"),
    "pca-matrix-nan": ("pca", lambda p: patch_section(
        p, "projection", 36, struct.pack("<f", float("inf")), None), E.FormatError,
        "search"),
    "pca-matrix-wrong-shape": ("pca", lambda p: rewrite_directory(
        p, _reshape("projection", None)), E.SectionLengthMismatch, "open"),
    "pca-without-matrix": ("pca", lambda p: rewrite_directory(
        p, lambda d: d["sections"].remove(_section(d, "projection", None))),
        E.MalformedDirectory, "open"),
    "projection-dropped": ("prefix-float8", lambda p: rewrite_directory(
        p, lambda d: d["meta"].pop("projection")), E.SectionLengthMismatch, "open"),
}


@pytest.mark.parametrize("case", sorted(PROJECTED_CASES))
def test_corrupt_projected_case_raises_its_error(tmp_path, golden_dir, case):
    golden, *expect = PROJECTED_CASES[case]
    p = str(tmp_path / "victim.edgevec")
    shutil.copyfile(os.path.join(golden_dir, golden + ".edgevec"), p)
    _raises(p, *expect)


def patch_slot(path, **fields):
    from edgevec.storage.layout import pack_slot
    _, h = read_directory(path)
    s = h.slot
    values = dict(generation=s.generation + 1, dir_offset=s.dir_offset,
                  dir_length=s.dir_length, committed_length=s.committed_length,
                  dir_crc=s.dir_crc)
    values.update(fields)
    patch(path, SLOT_OFFSETS[1 - s.index], pack_slot(**values))


@pytest.fixture
def victim(tmp_path, golden_dir):
    p = str(tmp_path / "victim.edgevec")
    shutil.copyfile(os.path.join(golden_dir, "str-ids.edgevec"), p)
    return p


@pytest.fixture
def lexical_victim(tmp_path, golden_dir):
    p = str(tmp_path / "victim.edgevec")
    shutil.copyfile(os.path.join(golden_dir, "lexical.edgevec"), p)
    return p


@pytest.mark.parametrize("case", sorted(LEXICAL_CASES))
def test_corrupt_lexical_case_raises_its_error(lexical_victim, case):
    _raises(lexical_victim, *LEXICAL_CASES[case])
    if LEXICAL_CASES[case][2] == "verify":  # and the BM25 scan refuses the damage too
        with edgevec.open(lexical_victim) as idx:
            try:
                idx.search("quick dog fox lazy", mode="lexical")
            except E.FormatError:
                pass


@pytest.mark.parametrize("case", sorted(LEXICAL_ONLY_CASES))
def test_corrupt_lexical_only_case_raises_its_error(tmp_path, golden_dir, case):
    p = str(tmp_path / "victim.edgevec")
    shutil.copyfile(os.path.join(golden_dir, "lexical-only.edgevec"), p)
    _raises(p, *LEXICAL_ONLY_CASES[case])


@pytest.mark.parametrize("case", sorted(CASES))
def test_corrupt_case_raises_its_error(victim, case):
    _raises(victim, *CASES[case])


def _raises(victim, mutate, error, stage):
    mutate(victim)
    if stage == "open":
        with pytest.raises(error) as info:
            edgevec.open(victim)
        with pytest.raises(error):
            edgevec.open(victim, writable=True)
    else:
        with edgevec.open(victim) as idx:
            with pytest.raises(error) as info:
                if stage == "verify":
                    idx.verify()
                elif stage == "search":
                    idx.search(np.ones(idx.dim, np.float32), k=3)
                else:
                    idx.ids()
        if stage == "verify":
            with pytest.raises(error):
                edgevec.verify(victim)
    exc = info.value
    assert isinstance(exc, E.FormatError)
    assert exc.path == victim and victim in str(exc)
    assert exc.offset is not None and f"byte {exc.offset}" in str(exc)


def test_every_documented_case_is_tested():
    doc = open(os.path.join(os.path.dirname(__file__), "..", "formats", "CORRUPT.md"),
               encoding="utf-8").read()
    documented = {line.split("`")[1] for line in doc.splitlines()
                  if line.startswith("| `")}
    assert documented == (set(CASES) | set(LEXICAL_CASES) | set(LEXICAL_ONLY_CASES)
                          | set(COMPACT_CASES) | set(PROJECTED_CASES)
                          | {"torn-newest-slot", "newer-minor", "next-auto-id-at-limit"})


def test_next_auto_id_at_the_limit_refuses_automatic_ids(victim, golden_dir, tmp_path):
    """next_auto_id = 2**63 - 1 is a legal header (an int id 2**63 - 2 was added), but the
    next add without ids overflowed int64: it is refused, naming the fix (D17)."""
    p = str(tmp_path / "ints.edgevec")
    with edgevec.Index.create(p, dim=4) as idx:
        idx.add(np.eye(4, dtype=np.float32))
    rewrite_directory(p, lambda d: d["meta"].update(next_auto_id=2**63 - 1))
    with edgevec.open(p, writable=True) as idx:
        with pytest.raises(E.InvalidInput, match="2\\*\\*63 - 1.*ids="):
            idx.add(np.eye(4, dtype=np.float32)[:2])
        idx.add(np.eye(4, dtype=np.float32)[:2], ids=[7, 8])
        assert len(idx) == 6


def test_torn_newest_slot_falls_back_to_previous_commit(victim):
    with edgevec.open(victim) as idx:
        gen, rows = idx.generation, len(idx)
    with edgevec.open(victim, writable=True) as idx:
        idx.add(np.eye(1, 72, dtype=np.float32), ids=["late"])
        slot = idx._s.header.slot.index
    patch(victim, SLOT_OFFSETS[slot] + 30, b"\x00\x01")  # tear the newest slot
    with edgevec.open(victim) as idx:
        assert idx.generation == gen and len(idx) == rows and "late" not in idx
        idx.verify()
    with edgevec.open(victim, writable=True) as idx:  # a writer continues from there
        idx.add(np.eye(1, 72, dtype=np.float32), ids=["later"])
        assert len(idx) == rows + 1
    edgevec.verify(victim)


def test_newer_minor_version_still_opens(victim):
    """A file from a future 1.x writer: new meta keys and a new section kind are skipped."""
    def edit(doc):
        doc["meta"]["hologram_settings"] = {"x": 1}
        sec = dict(_section(doc, "binary"), kind="hologram")
        sec["offset"] = 1536 + 0  # anywhere: unknown sections are not read
        sec["length"] = 0
        sec["shape"] = [0]
        doc["sections"].append(sec)
    rewrite_directory(victim, edit)
    _preamble(victim, v=(10, "<H", 7))
    with edgevec.open(victim) as idx:
        assert idx.info()["format_version"] == "1.7"
        assert len(idx) == 8 and idx.get("alpha").text == "first text"


def test_idrows_out_of_range_raises_on_lookup(victim):
    patch_section(victim, "idrows", 0, struct.pack("<7I", *[4_000_000] * 7))
    with edgevec.open(victim) as idx:
        with pytest.raises(E.SectionOutOfBounds, match="idrows"):
            idx.get("alpha")
        with pytest.raises(E.FormatError):
            idx.verify()


def test_malformed_row_metadata_raises_format_error(victim):
    patch_section(victim, "meta.bytes", 0, b"[")
    with edgevec.open(victim) as idx:
        with pytest.raises(E.FormatError, match="JSON object"):
            idx.get("alpha")


def test_writer_refuses_to_compact_a_damaged_file(victim):
    patch(victim, _section(read_directory(victim)[0], "int8")["offset"], b"\x7f\x7f")
    before = open(victim, "rb").read()
    with edgevec.open(victim, writable=True) as idx:
        with pytest.raises(E.ChecksumMismatch):
            idx.compact()
    assert open(victim, "rb").read() == before
