"""The JSON directory of one commit: parsing with every structural rule of
formats/SPEC.md (D1-D12), and deterministic serialisation.

Parsing is O(number of sections); nothing here reads row data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..codecs import MAX_BITS, transform_bytes, words_for
from ..errors import (
    MalformedDirectory,
    SectionLengthMismatch,
    SectionMisaligned,
    SectionOutOfBounds,
    SectionOverlap,
)
from .layout import (
    ALIGN,
    CODE_SECTIONS,
    CODEC_SETS,
    COLUMN_PARTS,
    DATA_START,
    ID_TYPES,
    LEXICAL_KINDS,
    METRICS,
    PROJECTIONS,
    SECTION_KINDS,
    TRANSFORM_BLOCK,
    VERSION_MINOR,
    code_dim,
    dtype_of,
)

SEGMENT_REQUIRED = ("idkeys", "idrows")  # and the kinds of meta.codecs
VECTOR_KINDS = ("binary", "int8", "f16", "transform", "float8")
PAIRED = (("texts.offsets", "texts.bytes"), ("meta.offsets", "meta.bytes"),
          ("ids.offsets", "ids.bytes"))
MAX_DIM = 65536
# D17: header values that later size an allocation or feed a fixed-width integer are
# bounded where they are read (a writer never stores more: RRF_K 5, RRF_DEPTH 100, a
# measured m <= 64)
MAX_RRF_K = 1_000_000
MAX_RRF_DEPTH = 100_000
MAX_RESCORE_M = 4096


@dataclass(frozen=True)
class Section:
    kind: str
    offset: int
    length: int
    dtype: str
    shape: tuple[int, ...]
    crc32: int
    segment: int | None = None
    commit: int | None = None
    name: str | None = None
    ctype: str | None = None
    part: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "offset": self.offset, "length": self.length,
                               "dtype": self.dtype, "shape": list(self.shape),
                               "crc32": self.crc32}
        for key in ("segment", "commit", "name", "ctype", "part"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class SegmentInfo:
    rows: int
    row_start: int


@dataclass
class Directory:
    meta: dict[str, Any]
    segments: list[SegmentInfo]
    sections: list[Section]
    # (kind, segment) -> Section for the per-segment kinds; columns by (segment, name, part)
    by_segment: dict[tuple[str, int], Section] = field(default_factory=dict)
    columns: dict[tuple[int, str], dict[str, Section]] = field(default_factory=dict)
    column_types: dict[tuple[int, str], str] = field(default_factory=dict)
    tombstones: list[Section] = field(default_factory=list)
    blobs: dict[str, Section] = field(default_factory=dict)
    calibration: Section | None = None

    @property
    def dim(self) -> int:
        return self.meta["dim"]

    @property
    def rows(self) -> int:
        return self.meta["rows"]

    def to_bytes(self) -> bytes:
        doc = {"meta": self.meta,
               "segments": [{"rows": s.rows, "row_start": s.row_start} for s in self.segments],
               "sections": [s.to_json() for s in self.sections]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False).encode("utf-8")


# --- parsing ---------------------------------------------------------------------------


class _Checker:
    def __init__(self, path, dir_offset: int) -> None:
        self.path = path
        self.offset = dir_offset

    def fail(self, message: str, exc=MalformedDirectory, offset: int | None = None):
        raise exc(message, path=self.path, offset=self.offset if offset is None else offset)

    def get(self, obj: dict, key: str, kind, where: str, *, optional=False, default=None):
        if not isinstance(obj, dict):
            self.fail(f"{where} must be a JSON object, got {type(obj).__name__}")
        if key not in obj:
            if optional:
                return default
            self.fail(f"{where} misses the required key {key!r}")
        value = obj[key]
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is None:
            ok = True
        else:
            ok = isinstance(value, kind)
        if optional and value is None:
            return default
        if not ok:
            name = kind.__name__ if isinstance(kind, type) else str(kind)
            self.fail(f"{where}.{key} must be {name}, got {type(value).__name__} {value!r:.60}")
        return value

    def count(self, obj: dict, key: str, where: str, *, low: int = 0,
              high: int = 2**63 - 1) -> int:
        value = self.get(obj, key, int, where)
        if not low <= value <= high:
            self.fail(f"{where}.{key} = {value} is outside [{low}, {high}]")
        return value


def parse_directory(raw: bytes, *, path, dir_offset: int, committed_length: int,
                    file_minor: int) -> Directory:
    """Parse and validate a directory (rules D1-D14 of SPEC.md)."""
    ck = _Checker(path, dir_offset)
    try:
        doc = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        ck.fail(f"directory is not valid UTF-8 JSON ({type(exc).__name__}: {str(exc)[:120]})")
    if not isinstance(doc, dict):
        ck.fail(f"directory must be a JSON object, got {type(doc).__name__}")

    meta = ck.get(doc, "meta", dict, "directory")
    dim = ck.count(meta, "dim", "meta", low=0, high=MAX_DIM)  # 0: lexical-only (1.2)
    metric = ck.get(meta, "metric", str, "meta")
    if metric not in METRICS:
        ck.fail(f"meta.metric {metric!r} is not one of {METRICS}")
    if "id_type" not in meta:
        ck.fail("meta misses the required key 'id_type'")
    id_type = ck.get(meta, "id_type", str, "meta", optional=True)
    if id_type is not None and id_type not in ID_TYPES:
        ck.fail(f"meta.id_type {id_type!r} is not one of {ID_TYPES} or null")
    codecs = ck.get(meta, "codecs", list, "meta")
    if dim == 0:
        if codecs:
            ck.fail(f"meta.codecs {codecs!r:.80} must be empty in a lexical-only index (dim 0)")
    elif tuple(codecs) not in CODEC_SETS:
        ck.fail(f"meta.codecs {codecs!r:.80} is not one of "
                f"{[list(c) for c in CODEC_SETS]}")
    projection = _check_projection(ck, meta, dim)
    transform = (_check_transform(ck, meta, code_dim(meta)) if "transform" in codecs
                 else None)
    rows_total = ck.count(meta, "rows", "meta")
    deleted_total = ck.count(meta, "deleted", "meta")
    ck.count(meta, "next_auto_id", "meta")
    if deleted_total > rows_total:
        ck.fail(f"meta.deleted = {deleted_total} exceeds meta.rows = {rows_total}")
    for key, high in (("rescore_m", MAX_RESCORE_M), ("rescore_rows", 2**63 - 1)):
        if meta.get(key) is not None:  # optional: null or absent is fine
            ck.count(meta, key, "meta", low=1, high=high)
    ck.get(meta, "user", dict, "meta")
    fields = ck.get(meta, "fields", dict, "meta")
    for name, ctype in fields.items():
        if not isinstance(ctype, str) or ctype not in COLUMN_PARTS:
            ck.fail(f"meta.fields[{name!r:.60}] = {ctype!r:.20} is not one of "
                    f"{sorted(COLUMN_PARTS)}")

    lexical = ck.get(meta, "lexical", dict, "meta", optional=True)
    if lexical is not None:
        _check_lexical(ck, lexical)
    elif dim == 0:
        ck.fail("meta.dim is 0 (a lexical-only index) but meta.lexical is null")

    raw_segments = ck.get(doc, "segments", list, "directory")
    segments: list[SegmentInfo] = []
    start = 0
    for i, seg in enumerate(raw_segments):
        n = ck.count(seg, "rows", f"segments[{i}]", high=2**32 - 1)
        row_start = ck.count(seg, "row_start", f"segments[{i}]")
        if row_start != start:
            ck.fail(f"segments[{i}].row_start = {row_start}, expected {start} "
                    "(segments must be contiguous)")
        segments.append(SegmentInfo(n, row_start))
        start += n
    if start != rows_total:
        ck.fail(f"meta.rows = {rows_total} but the segments hold {start} rows")

    d = Directory(meta=meta, segments=segments, sections=[])
    raw_sections = ck.get(doc, "sections", list, "directory")
    newer_minor = file_minor > VERSION_MINOR
    tomb_rows = 0
    for i, rs in enumerate(raw_sections):
        where = f"sections[{i}]"
        kind = ck.get(rs, "kind", str, where)
        if kind not in SECTION_KINDS:
            if newer_minor:  # rule D3: a newer minor version may add kinds; skip them
                continue
            ck.fail(f"{where}.kind {kind!r:.40} is not a known section kind")
        allowed, scope = SECTION_KINDS[kind]
        offset = ck.count(rs, "offset", where)
        length = ck.count(rs, "length", where)
        dtype = ck.get(rs, "dtype", str, where)
        if dtype not in allowed:
            ck.fail(f"{where} ({kind}) has dtype {dtype!r:.20}; allowed: {sorted(allowed)}")
        shape_raw = ck.get(rs, "shape", list, where)
        if not 1 <= len(shape_raw) <= 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63
                for v in shape_raw):
            ck.fail(f"{where}.shape {shape_raw!r:.60} must be 1 or 2 non-negative integers")
        shape = tuple(shape_raw)
        crc = ck.count(rs, "crc32", where, high=2**32 - 1)
        if offset % ALIGN:
            ck.fail(f"{where} ({kind}) starts at byte {offset}, not a multiple of {ALIGN}",
                    SectionMisaligned, offset)
        if offset < DATA_START or offset + length > committed_length:
            ck.fail(f"{where} ({kind}) spans bytes [{offset}, {offset + length}), outside the "
                    f"data area [{DATA_START}, {committed_length})", SectionOutOfBounds, offset)
        if math.prod(shape) * dtype_of(dtype).itemsize != length:
            ck.fail(f"{where} ({kind}) is {length} bytes but dtype {dtype} x shape "
                    f"{list(shape)} needs {math.prod(shape) * dtype_of(dtype).itemsize}",
                    SectionLengthMismatch, offset)
        extra: dict[str, Any] = {}
        if scope == "segment":
            seg = ck.count(rs, "segment", where, high=max(len(segments) - 1, 0))
            if not segments:
                ck.fail(f"{where} ({kind}) names segment {seg} but there are no segments")
            extra["segment"] = seg
        elif scope == "commit":
            extra["commit"] = ck.count(rs, "commit", where, low=1)
        if kind in ("blob", "column"):
            extra["name"] = ck.get(rs, "name", str, where)
        if kind == "column":
            ctype = ck.get(rs, "ctype", str, where)
            part = ck.get(rs, "part", str, where)
            parts = COLUMN_PARTS.get(ctype)
            if parts is None or part not in parts or parts[part] != dtype:
                ck.fail(f"{where}: column part {ctype!r:.20}/{part!r:.20} with dtype {dtype} "
                        "is not defined by the spec")
            if fields.get(extra["name"]) != ctype:
                ck.fail(f"{where}: column {extra['name']!r:.60} has type {ctype} but meta.fields "
                        f"declares {fields.get(extra['name'])!r}")
            extra["ctype"], extra["part"] = ctype, part
        sec = Section(kind, offset, length, dtype, shape, crc, **extra)
        _check_shape(ck, sec, where, segments, meta, transform, projection)
        if kind == "tombstones":
            tomb_rows += shape[0]
        d.sections.append(sec)
        _register(ck, d, sec, where)

    if tomb_rows != deleted_total:
        ck.fail(f"meta.deleted = {deleted_total} but the tombstone sections hold {tomb_rows} rows")
    _check_complete(ck, d, codecs, id_type, lexical is not None)
    _check_overlaps(ck, d.sections, dir_offset, len(raw))
    return d


def _check_lexical(ck: _Checker, lexical: dict) -> None:
    """meta.lexical (1.1): the parts search reads, with their types and ranges (what the
    analyzer's settings mean is the analyzer's to judge)."""
    ck.get(lexical, "analyzer", dict, "meta.lexical")
    ck.get(lexical, "fingerprint", str, "meta.lexical")
    bm25 = ck.get(lexical, "bm25", dict, "meta.lexical")
    for key, high in (("k1", 1e6), ("b", 1.0)):
        v = bm25.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= high:
            ck.fail(f"meta.lexical.bm25.{key} = {v!r:.40} must be a number in [0, {high}]")
    rrf = ck.get(lexical, "rrf", dict, "meta.lexical")
    ck.count(rrf, "k", "meta.lexical.rrf", low=1, high=MAX_RRF_K)
    ck.count(rrf, "depth", "meta.lexical.rrf", low=1, high=MAX_RRF_DEPTH)


def _check_transform(ck: _Checker, meta: dict, dim: int) -> dict | None:
    """meta.transform (1.3): null until the first rows fit the code, then `bits` (dim
    ints 0..MAX_BITS, at least one not 0), `quantizer` "uniform" and `block` 512."""
    t = ck.get(meta, "transform", dict, "meta", optional=True)
    if t is None:
        return None
    bits = ck.get(t, "bits", list, "meta.transform")
    if len(bits) != dim or not all(isinstance(b, int) and not isinstance(b, bool)
                                   and 0 <= b <= MAX_BITS for b in bits) or not any(bits):
        ck.fail(f"meta.transform.bits must be {dim} integers in [0, {MAX_BITS}], not all 0")
    if t.get("quantizer") != "uniform" or t.get("block") != TRANSFORM_BLOCK:
        ck.fail(f"meta.transform needs quantizer 'uniform' and block {TRANSFORM_BLOCK}, got "
                f"{t.get('quantizer')!r:.20} and {t.get('block')!r:.20}")
    return t


def _check_projection(ck: _Checker, meta: dict, dim: int) -> dict | None:
    """meta.projection (1.4): absent/null, or `kind` ("pca" or "prefix") and `dims` in
    [1, dim - 1], the dimension every vector code then stores (rule D16)."""
    p = ck.get(meta, "projection", dict, "meta", optional=True)
    if p is None:
        return None
    if p.get("kind") not in PROJECTIONS:
        ck.fail(f"meta.projection.kind {p.get('kind')!r:.20} is not one of {PROJECTIONS}")
    ck.count(p, "dims", "meta.projection", low=1, high=max(dim - 1, 1))
    if dim < 2:
        ck.fail(f"meta.projection needs vectors of 2 or more dimensions; meta.dim is {dim}")
    return p


def _check_shape(ck: _Checker, sec: Section, where: str, segments, meta: dict,
                 transform: dict | None, projection: dict | None) -> None:
    n = segments[sec.segment].rows if sec.segment is not None else None
    expected: tuple | None
    k = sec.kind
    dim = code_dim(meta) if meta["dim"] else 0
    if k in ("transform", "transform.model") and transform is None:
        ck.fail(f"{where} ({k}) needs meta.codecs ['transform'] and meta.transform")
    if k == "projection" and (projection is None or projection["kind"] != "pca"):
        ck.fail(f"{where} (projection) needs meta.projection of kind 'pca'")
    if k == "transform":
        expected = (-(-n // TRANSFORM_BLOCK), transform_bytes(transform["bits"]) * TRANSFORM_BLOCK)
    elif k == "transform.model":
        expected = (dim + 2, dim)
    elif k == "projection":
        expected = (dim + 1, meta["dim"])
    elif k == "float8.scale":
        expected = (dim,)
    elif k == "binary":
        expected = (n, words_for(dim))
    elif k in ("int8", "f16", "float8"):
        expected = (n, dim)
    elif k in ("ids.int", "idkeys", "idrows", "lex.norms"):
        expected = (n,)
    elif k == "lex.totals":
        expected = (2,)
    elif k in ("ids.offsets", "texts.offsets", "meta.offsets"):
        expected = (n + 1,)
    elif k == "calibration":
        expected = (2, dim)
    elif k == "column":
        expected = (n,) if sec.part in ("values", "valid", "codes") else None
        if expected is None and len(sec.shape) != 1:
            expected = (sec.shape[0],)
    else:  # byte strings, tombstones
        expected = None if len(sec.shape) == 1 else (sec.shape[0],)
    if expected is not None and sec.shape != expected:
        ck.fail(f"{where} ({k}) has shape {list(sec.shape)}, expected {list(expected)}",
                SectionLengthMismatch, sec.offset)


def _register(ck: _Checker, d: Directory, sec: Section, where: str) -> None:
    k = sec.kind
    if k == "tombstones":
        d.tombstones.append(sec)
    elif k == "calibration":
        if d.calibration is not None:
            ck.fail(f"{where}: a second calibration section")
        d.calibration = sec
    elif k == "blob":
        if sec.name in d.blobs:
            ck.fail(f"{where}: a second blob named {sec.name!r:.60}")
        d.blobs[sec.name] = sec
    elif k == "column":
        key = (sec.segment, sec.name)
        ctype = d.column_types.setdefault(key, sec.ctype)
        if ctype != sec.ctype:
            ck.fail(f"{where}: column {sec.name!r:.60} of segment {sec.segment} is declared both "
                    f"{ctype} and {sec.ctype}")
        parts = d.columns.setdefault(key, {})
        if sec.part in parts:
            ck.fail(f"{where}: a second {sec.part!r} part of column {sec.name!r:.60}")
        parts[sec.part] = sec
    else:
        key = (k, sec.segment)
        if key in d.by_segment:
            ck.fail(f"{where}: a second {k!r} section for segment {sec.segment}")
        d.by_segment[key] = sec


def _check_complete(ck: _Checker, d: Directory, codecs: list, id_type: str | None,
                    lexical_index: bool | None = None) -> None:
    vectors = d.dim > 0
    if d.segments and "int8" in codecs and d.calibration is None:
        ck.fail("the index has rows but no calibration section")
    if d.segments and "transform" in codecs and ("transform.model", None) not in d.by_segment:
        ck.fail("the index has rows but no transform.model section (or meta.transform)")
    if "int8" not in codecs and d.calibration is not None:
        ck.fail(f"a calibration section, but meta.codecs {codecs} has no int8 codes")
    float8 = any(CODE_SECTIONS.get(c) == "float8" for c in codecs)
    if d.segments and float8 and ("float8.scale", None) not in d.by_segment:
        ck.fail("the index has rows but no float8.scale section")
    if not float8 and ("float8.scale", None) in d.by_segment:
        ck.fail(f"a float8.scale section, but meta.codecs {codecs} has no float8 codes")
    projection = d.meta.get("projection")
    if d.segments and projection and projection["kind"] == "pca" \
            and ("projection", None) not in d.by_segment:
        ck.fail("the index has rows and meta.projection 'pca' but no projection section")
    if not vectors and any(k in VECTOR_KINDS for k, _ in d.by_segment):
        ck.fail("a lexical-only index (dim 0) has a vector section")
    if d.segments and id_type is None:
        ck.fail("the index has rows but meta.id_type is null")
    for s in range(len(d.segments)):
        for kind in SEGMENT_REQUIRED + tuple(CODE_SECTIONS[c] for c in codecs):
            if (kind, s) not in d.by_segment:
                ck.fail(f"segment {s} has no {kind!r} section")
        for kind in VECTOR_KINDS:
            if kind not in map(CODE_SECTIONS.get, codecs) and (kind, s) in d.by_segment:
                ck.fail(f"segment {s}: a {kind!r} section, but meta.codecs {codecs} does not "
                        f"list {kind!r}")
        id_kind = "ids.int" if id_type == "int" else "ids.offsets"
        if (id_kind, s) not in d.by_segment:
            ck.fail(f"segment {s} has no {id_kind!r} section for its {id_type} ids")
        for a, b in PAIRED:
            if ((a, s) in d.by_segment) != ((b, s) in d.by_segment):
                ck.fail(f"segment {s}: sections {a!r} and {b!r} must come together")
        lexical = [kind for kind in LEXICAL_KINDS if (kind, s) in d.by_segment]
        if lexical and len(lexical) != len(LEXICAL_KINDS):
            ck.fail(f"segment {s} has lexical sections {lexical} but not all of "
                    f"{list(LEXICAL_KINDS)}")
        if lexical:
            terms = d.by_segment[("lex.df", s)].shape[0]
            for kind in ("lex.terms.offsets", "lex.post.offsets"):
                sec = d.by_segment[(kind, s)]
                if sec.shape != (terms + 1,):
                    ck.fail(f"segment {s}: {kind} has shape {list(sec.shape)} for {terms} "
                            f"terms, expected [{terms + 1}]", SectionLengthMismatch, sec.offset)
        if lexical_index is not None and lexical_index != bool(lexical) and d.segments[s].rows:
            ck.fail(f"segment {s}: meta.lexical is {'set' if lexical_index else 'null'} but "
                    f"the segment {'lacks' if lexical_index else 'has'} lexical sections")
    for (s, name), parts in d.columns.items():
        need = set(COLUMN_PARTS[d.column_types[(s, name)]])
        if set(parts) != need:
            ck.fail(f"column {name!r:.60} of segment {s} has parts {sorted(parts)}, "
                    f"needs {sorted(need)}")


def _check_overlaps(ck: _Checker, sections: list[Section], dir_offset: int,
                    dir_length: int) -> None:
    spans = sorted((s.offset, s.offset + s.length, s.kind) for s in sections if s.length)
    spans.append((dir_offset, dir_offset + dir_length, "directory"))
    spans.sort()
    for (a0, a1, ak), (b0, b1, bk) in zip(spans, spans[1:]):
        if b0 < a1:
            ck.fail(f"sections {ak!r} [{a0}, {a1}) and {bk!r} [{b0}, {b1}) overlap",
                    SectionOverlap, b0)
