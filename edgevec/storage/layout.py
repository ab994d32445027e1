"""Byte layout of the .edgevec file: constants, the fixed header, commit slots and
the section kinds. This module mirrors formats/SPEC.md section by section; rule
numbers (F1, F2, ...) refer to that document.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .. import codecs
from ..errors import ChecksumMismatch, HeaderError, NotAnEdgevecFile, UnsupportedVersion

MAGIC = b"\x89EDGEVEC"
VERSION_MAJOR = 1
VERSION_MINOR = 4  # 1.1: lexical postings (lex.* sections, meta.lexical); 1.2: lexical-only
# indexes (dim 0, no vector sections); 1.3: compact indexes (transform codes); 1.4: float8
# codes and stored projections (meta.projection). A file is
# stamped with the lowest minor version that reads it (minor_for), so a file with sign
# bits and int8 codes stays readable by 1.1 readers.
ALIGN = 64
# The two commit slots live in different 512-byte sectors so that a torn sector write can
# damage at most one of them.
SLOT_OFFSETS = (512, 1024)
SLOT_SIZE = 64
SLOT_MAGIC = b"EVCOMMIT"
DATA_START = 1536
# F9: the largest directory a reader reads (and a writer commits). Open reads the header
# and then at most this many bytes before every checksum it needs is verified, whatever a
# (hostile) slot claims; ~40,000 appends of ~10 sections fit, and compaction shrinks it.
MAX_DIRECTORY_BYTES = 64 << 20

# magic, major, minor, data_start, alignment, flags, 36 reserved bytes, crc32 of bytes 0..60
_PREAMBLE = struct.Struct("<8sHHIII36xI")
# magic, generation, dir_offset, dir_length, committed_length, dir_crc32, 16 reserved, crc32
_SLOT = struct.Struct("<8sQQQQI16xI")

# Section kinds (1.0, and the lex.* kinds of 1.1) -> (allowed dtypes, scope). Scope "segment": one per
# segment; "commit": written by one commit (tombstones); "index": one per file.
SECTION_KINDS: dict[str, tuple[frozenset[str], str]] = {
    "binary": (frozenset({"<u8"}), "segment"),
    "int8": (frozenset({"|i1"}), "segment"),
    "f16": (frozenset({"<f2"}), "segment"),
    "ids.int": (frozenset({"<i8"}), "segment"),
    "ids.offsets": (frozenset({"<u8"}), "segment"),
    "ids.bytes": (frozenset({"|u1"}), "segment"),
    "idkeys": (frozenset({"<u8"}), "segment"),
    "idrows": (frozenset({"<u4"}), "segment"),
    "texts.offsets": (frozenset({"<u8"}), "segment"),
    "texts.bytes": (frozenset({"|u1"}), "segment"),
    "meta.offsets": (frozenset({"<u8"}), "segment"),
    "meta.bytes": (frozenset({"|u1"}), "segment"),
    "column": (frozenset({"<i8", "<f8", "|u1", "<i4", "<u8"}), "segment"),
    "tombstones": (frozenset({"<u8"}), "commit"),
    "lex.terms.offsets": (frozenset({"<u8"}), "segment"),
    "lex.terms.bytes": (frozenset({"|u1"}), "segment"),
    "lex.df": (frozenset({"<u4"}), "segment"),
    "lex.post.offsets": (frozenset({"<u8"}), "segment"),
    "lex.post.data": (frozenset({"|u1"}), "segment"),
    "lex.norms": (frozenset({"|u1"}), "segment"),
    "lex.totals": (frozenset({"<u8"}), "segment"),
    "transform": (frozenset({"|u1"}), "segment"),
    "float8": (frozenset({"|u1"}), "segment"),
    "calibration": (frozenset({"<f4"}), "index"),
    "transform.model": (frozenset({"<f4"}), "index"),
    "float8.scale": (frozenset({"<f4"}), "index"),
    "projection": (frozenset({"<f4"}), "index"),
    "blob": (frozenset({"|u1"}), "index"),
}
# the sections of a segment's postings: all or none of them
LEXICAL_KINDS = ("lex.terms.offsets", "lex.terms.bytes", "lex.df", "lex.post.offsets",
                 "lex.post.data", "lex.norms", "lex.totals")
COLUMN_TYPES = ("int", "float", "bool", "str")
# part -> dtype, per column type
COLUMN_PARTS: dict[str, dict[str, str]] = {
    "int": {"values": "<i8", "valid": "|u1"},
    "float": {"values": "<f8", "valid": "|u1"},
    "bool": {"values": "|u1", "valid": "|u1"},
    "str": {"codes": "<i4", "dict.offsets": "<u8", "dict.bytes": "|u1"},
}
METRICS = ("cosine", "dot")
# The sets of vector codes an index can keep (meta.codecs), in that order: sign bits
# scanned and int8 codes rescoring them (float16 vectors rescoring last), or (1.3) one
# transform code alone (the compact preset), or (1.4) sign bits scanned and float8 codes
# (E4M3 or E5M2) rescoring them.
CODEC_SETS = (("binary", "int8"), ("binary", "int8", "f16"), ("transform",),
              ("binary", "f8e4m3"), ("binary", "f8e5m2"))
# meta.codecs name -> the per-segment section kind holding that code
CODE_SECTIONS = {"binary": "binary", "int8": "int8", "f16": "f16", "transform": "transform",
                 "f8e4m3": "float8", "f8e5m2": "float8"}
PROJECTIONS = codecs.PROJECTIONS
TRANSFORM_BLOCK = codecs.TRANSFORM_BLOCK  # rows per byte-major block of a transform section
ID_TYPES = ("int", "str")


def align_up(n: int, alignment: int = ALIGN) -> int:
    return (n + alignment - 1) // alignment * alignment


def crc32(data, value: int = 0) -> int:
    return zlib.crc32(data, value) & 0xFFFFFFFF


# --- preamble ------------------------------------------------------------------------


def code_dim(meta: dict) -> int:
    """The dimension the vector codes store: meta.projection's dims, else meta.dim."""
    projection = meta.get("projection")
    return projection["dims"] if projection else meta["dim"]


def minor_for(meta: dict) -> int:
    """The minor version a file with this meta is stamped with: 4 with float8 codes or a
    projection, 3 for a compact index (transform codes), 2 for a lexical-only index (older
    readers refuse them rather than misread them), else 1."""
    if meta.get("projection") or any(c.startswith("f8") for c in meta.get("codecs", ())):
        return 4
    if "transform" in meta.get("codecs", ()):
        return 3
    return 2 if meta.get("dim") == 0 else 1


def pack_preamble(minor: int = VERSION_MINOR) -> bytes:
    body = _PREAMBLE.pack(MAGIC, VERSION_MAJOR, minor, DATA_START, ALIGN, 0, 0)
    return body[:60] + struct.pack("<I", crc32(body[:60]))


@dataclass(frozen=True)
class Preamble:
    major: int
    minor: int


def parse_preamble(raw: bytes, path) -> Preamble:
    """Check rules F1-F4 on the first 64 bytes."""
    if len(raw) < 8 or raw[:8] != MAGIC:
        raise NotAnEdgevecFile(
            f"not an edgevec file: it starts with {bytes(raw[:8])!r}, expected {MAGIC!r}; "
            "build one with edgevec.Index.create or `edgevec build`",
            path=path, offset=0)
    if len(raw) < _PREAMBLE.size:
        from ..errors import TruncatedFile
        raise TruncatedFile(f"file is {len(raw)} bytes, shorter than the {_PREAMBLE.size}-byte "
                            "header", path=path, offset=len(raw))
    magic, major, minor, data_start, alignment, flags, crc = _PREAMBLE.unpack(raw[:64])
    if major != VERSION_MAJOR:
        raise UnsupportedVersion(
            f"format version {major}.{minor} is not supported: this edgevec reads major version "
            f"{VERSION_MAJOR}; upgrade edgevec (newer files) or rebuild the index (older files)",
            path=path, offset=8)
    if crc != crc32(raw[:60]):
        raise ChecksumMismatch(f"header checksum {crc:#010x} does not match the header bytes "
                               f"({crc32(raw[:60]):#010x}); the file is damaged", path=path,
                               offset=60)
    if data_start != DATA_START or alignment != ALIGN:
        raise HeaderError(f"header declares data start {data_start} and alignment {alignment}; "
                          f"format {VERSION_MAJOR}.x requires {DATA_START} and {ALIGN}",
                          path=path, offset=12)
    return Preamble(major, minor)


# --- commit slots ----------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    index: int  # 0 or 1: which slot position it was read from
    generation: int
    dir_offset: int
    dir_length: int
    committed_length: int
    dir_crc: int


def pack_slot(generation: int, dir_offset: int, dir_length: int, committed_length: int,
              dir_crc: int) -> bytes:
    body = _SLOT.pack(SLOT_MAGIC, generation, dir_offset, dir_length, committed_length,
                      dir_crc, 0)
    return body[:60] + struct.pack("<I", crc32(body[:60]))


def parse_slot(raw: bytes, index: int) -> Slot | None:
    """A slot, or None when it is empty or torn (bad magic or checksum; rule F5)."""
    if len(raw) < SLOT_SIZE:
        return None
    magic, gen, off, length, committed, dcrc, crc = _SLOT.unpack(raw[:SLOT_SIZE])
    if magic != SLOT_MAGIC or crc != crc32(raw[:60]) or gen == 0:
        return None
    return Slot(index, gen, off, length, committed, dcrc)


# --- dtypes ------------------------------------------------------------------------------


def dtype_of(code: str) -> np.dtype:
    return np.dtype(code)


def dtype_code(dt: np.dtype) -> str:
    dt = np.dtype(dt)
    code = dt.str
    if code in ("<i1", ">i1"):
        return "|i1"
    if code in ("<u1", ">u1"):
        return "|u1"
    return code
