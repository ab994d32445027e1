"""Turn rows into the sections of one segment: for a new batch, and for compaction
(which streams the live rows of every segment of a snapshot into one segment)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..codecs import block_rows, transform_blocks
from .columns import encode_column
from .postings import Postings
from .reader import Snapshot
from .strings import encode_table, id_keys, sorted_keys
from .writer import NEW_SEGMENT, Pending

COMPACT_CHUNK_ROWS = 1 << 16


def batch_pending(*, binary: np.ndarray | None, int8: np.ndarray | None,
                  f16: np.ndarray | None, transform: np.ndarray | None = None,
                  float8: np.ndarray | None = None, ids: Sequence, id_type: str,
                  texts: Sequence[str] | None,
                  meta_json: Sequence[str] | None,
                  columns: Sequence[tuple[str, str, str, np.ndarray]],
                  postings: Postings | None = None) -> list[Pending]:
    """The sections of a new segment holding one validated, encoded batch (no vector
    codes in a lexical-only index)."""
    seg = {"segment": NEW_SEGMENT}
    out = [Pending.of(kind, codes, **seg)
           for kind, codes in (("binary", binary), ("int8", int8), ("f16", f16),
                               ("transform", transform), ("float8", float8))
           if codes is not None]
    if id_type == "int":
        out.append(Pending.of("ids.int", np.asarray(ids, dtype="<i8"), **seg))
    else:
        offs, blob = encode_table(ids)
        out += [Pending.of("ids.offsets", offs, **seg), Pending.of("ids.bytes", blob, **seg)]
    keys, rows = sorted_keys(id_keys(ids, id_type))
    out += [Pending.of("idkeys", keys, **seg), Pending.of("idrows", rows, **seg)]
    for prefix, strings in (("texts", texts), ("meta", meta_json)):
        if strings is not None:
            offs, blob = encode_table(strings)
            out += [Pending.of(prefix + ".offsets", offs, **seg),
                    Pending.of(prefix + ".bytes", blob, **seg)]
    for name, ctype, part, array in columns:
        out.append(Pending.of("column", array, name=name, ctype=ctype, part=part, **seg))
    if postings is not None:
        out += postings_pending(postings, seg)
    return out


def postings_pending(p: Postings, extra: dict) -> list[Pending]:
    """The lex.* sections of one segment's postings."""
    offs, blob = encode_table(p.terms)
    return [Pending.of("lex.terms.offsets", offs, **extra),
            Pending.of("lex.terms.bytes", blob, **extra),
            Pending.of("lex.df", np.asarray(p.df, dtype="<u4"), **extra),
            Pending.of("lex.post.offsets", np.asarray(p.offsets, dtype="<u8"), **extra),
            Pending.of("lex.post.data", np.asarray(p.data, dtype="|u1"), **extra),
            Pending.of("lex.norms", np.asarray(p.norms, dtype="|u1"), **extra),
            Pending.of("lex.totals", np.asarray(p.totals, dtype="<u8"), **extra)]


# --- compaction -----------------------------------------------------------------------------


def _chunks(snap: Snapshot, kind: str, live: list[np.ndarray]) -> Iterator[np.ndarray]:
    for seg, rows in enumerate(live):
        arr = snap.segment_array(kind, seg)
        for a in range(0, len(rows), COMPACT_CHUNK_ROWS):
            yield arr[rows[a:a + COMPACT_CHUNK_ROWS]]


def _table_pending(snap: Snapshot, prefix: str, live: list[np.ndarray], total: int,
                   extra: dict) -> list[Pending]:
    """Stream the live strings of every segment's table `prefix` into one new table."""
    tables = [snap.table(prefix, seg) for seg in range(len(live))]
    if all(t is None for t in tables):
        return []
    lengths = []  # compact_pending verified every table first: offsets are sound here
    for t, rows in zip(tables, live):
        if t is None:
            lengths.append(np.zeros(len(rows), dtype=np.int64))
            continue
        offs = t.offsets.astype(np.int64)
        lengths.append(offs[rows + 1] - offs[rows])
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offsets = np.zeros(total + 1, dtype="<u8")
    np.cumsum(all_lengths, out=offsets[1:])

    def byte_chunks() -> Iterator[np.ndarray]:
        for t, rows in zip(tables, live):
            if t is None:
                continue
            offs = t.offsets
            for a in range(0, len(rows), COMPACT_CHUNK_ROWS):
                part = rows[a:a + COMPACT_CHUNK_ROWS]
                yield np.frombuffer(b"".join(
                    t.data[int(offs[i]):int(offs[i + 1])].tobytes() for i in part.tolist()),
                    dtype=np.uint8)

    return [Pending.of(prefix + ".offsets", offsets, **extra),
            Pending("{}.bytes".format(prefix), byte_chunks(), "|u1",
                    (int(offsets[-1]),), dict(extra))]


def _column_pending(snap: Snapshot, name: str, ctype: str, live: list[np.ndarray],
                    extra: dict) -> list[Pending]:
    """Merge one field's per-segment columns (missing where a segment lacks it)."""
    cols = [snap.column(seg, name) for seg in range(len(live))]
    if all(c is None for c in cols):
        return []
    if ctype == "str":
        vocab: set[str] = set()
        tables = {}
        for seg, col in enumerate(cols):
            if col is not None:
                tables[seg] = col.dictionary().all()
                vocab.update(tables[seg])
        merged = sorted(vocab)
        lookup = {s: i for i, s in enumerate(merged)}
        codes = []
        for seg, rows in enumerate(live):
            if seg not in tables:
                codes.append(np.full(len(rows), -1, dtype="<i4"))
                continue
            remap = np.array([lookup[s] for s in tables[seg]] + [-1], dtype="<i4")
            local = cols[seg].array("codes")[rows].astype(np.int64)
            local = np.where((local < 0) | (local >= len(tables[seg])), -1, local)
            codes.append(remap[local])
        all_codes = np.concatenate(codes) if codes else np.zeros(0, "<i4")
        offsets, blob = encode_table(merged)
        parts = [("codes", all_codes), ("dict.offsets", offsets), ("dict.bytes", blob)]
    else:
        dtype = {"int": "<i8", "float": "<f8", "bool": "|u1"}[ctype]
        values, valid = [], []
        for col, rows in zip(cols, live):
            if col is None:  # (the directory checked its type equals meta.fields)
                values.append(np.zeros(len(rows), dtype=dtype))
                valid.append(np.zeros(len(rows), dtype="|u1"))
                continue
            values.append(col.array("values")[rows].astype(dtype))
            valid.append(col.array("valid")[rows])
        parts = [("values", np.concatenate(values)), ("valid", np.concatenate(valid))]
    return [Pending.of("column", arr, name=name, ctype=ctype, part=part, **extra)
            for part, arr in parts]


def compact_pending(snap: Snapshot) -> tuple[list[Pending], int]:
    """Sections of one segment holding every live row of `snap`, in row order."""
    snap.verify()  # never carry damage into the new file; every index below is now checked
    live = [snap.live_rows(seg) for seg in range(len(snap.segments))]
    total = int(sum(len(r) for r in live))
    extra = {"segment": NEW_SEGMENT}
    out: list[Pending] = []
    d = snap.directory
    if d.calibration is not None:
        out.append(Pending.of("calibration", np.array(snap.calibration())))
    for kind in ("projection", "float8.scale"):  # index-wide models, kept as they are
        sec = d.by_segment.get((kind, None))
        if sec is not None:
            out.append(Pending.of(kind, np.array(snap.array(sec))))
    for name, sec in sorted(d.blobs.items()):
        out.append(Pending("blob", iter([snap.array(sec)]), "|u1", sec.shape, {"name": name}))
    if not total:
        return out, 0
    model = d.by_segment.get(("transform.model", None))
    if model is not None:
        out.append(Pending.of("transform.model", np.array(snap.array(model))))
        packed = np.concatenate([block_rows(snap.transform_blocks(g), rows)
                                 for g, rows in enumerate(live)])
        blocks = transform_blocks(packed)
        out.append(Pending.of("transform", blocks.reshape(len(blocks), -1), **extra))
    if "binary" in snap.meta["codecs"]:  # (a lexical-only index has no vector codes)
        w = snap.segment_array("binary", 0).shape[1]
        out.append(Pending("binary", _chunks(snap, "binary", live), "<u8", (total, w),
                           dict(extra)))
    for kind, dtype in (("int8", "|i1"), ("float8", "|u1"), ("f16", "<f2")):
        if (kind, 0) in d.by_segment:
            out.append(Pending(kind, _chunks(snap, kind, live), dtype, (total, snap.code_dim),
                               dict(extra)))
    id_type = snap.meta["id_type"]
    keys = []
    for seg, rows in enumerate(live):
        k = np.empty(d.segments[seg].rows, dtype="<u8")
        k[snap.segment_array("idrows", seg)] = snap.segment_array("idkeys", seg)
        keys.append(k[rows])
    skeys, srows = sorted_keys(np.concatenate(keys))
    if id_type == "int":
        out.append(Pending("ids.int", _chunks(snap, "ids.int", live), "<i8", (total,),
                           dict(extra)))
    else:
        out += _table_pending(snap, "ids", live, total, extra)
    out += [Pending.of("idkeys", skeys, **extra), Pending.of("idrows", srows, **extra)]
    out += _table_pending(snap, "texts", live, total, extra)
    out += _table_pending(snap, "meta", live, total, extra)
    for name, ctype in sorted(snap.meta.get("fields", {}).items()):
        out += _column_pending(snap, name, ctype, live, extra)
    return out, total


__all__ = ["batch_pending", "compact_pending", "encode_column"]
