"""Open one committed state of a .edgevec file: one read-only mmap, zero-copy views.

`Snapshot(path)` reads the 1536-byte header, picks the newest intact commit slot, reads
and validates the JSON directory, and maps the committed bytes. Its cost depends on
the number of sections, never on the number of rows.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import stat
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codecs import (
    Projection,
    block_rows,
    dequantize_float8,
    dequantize_int8,
    float8_table,
    rotate,
    transform_bytes,
    transform_decode,
    transform_unpack,
)
from ..errors import (
    ChecksumMismatch,
    EdgevecError,
    FormatError,
    HeaderError,
    IndexNotFound,
    InvalidInput,
    NotAnEdgevecFile,
    SectionOutOfBounds,
    TruncatedFile,
    from_os_error,
)
from .directory import Directory, Section, SegmentInfo, parse_directory, words_for
from .layout import (
    ALIGN,
    DATA_START,
    MAX_DIRECTORY_BYTES,
    SLOT_OFFSETS,
    SLOT_SIZE,
    VERSION_MAJOR,
    VERSION_MINOR,
    Preamble,
    Slot,
    code_dim,
    crc32,
    dtype_of,
    parse_preamble,
    parse_slot,
)
from ..paths import file_kind
from .postings import Postings, length_to_norm
from .strings import StringTable, id_keys

_CRC_CHUNK = 1 << 24
_CHECK_ROWS = 65536  # rows of codes checked at a time by verify()


def os_error(exc: OSError, path, action: str) -> EdgevecError:
    """Translate an OSError on `path` into the matching EdgevecError."""
    p = os.fspath(path)
    if isinstance(exc, FileNotFoundError):
        return IndexNotFound(f"{p}: no such file; check the path, or create an index with "
                             "edgevec.Index.create")
    if isinstance(exc, IsADirectoryError) or exc.errno == errno.EISDIR:
        return NotAnEdgevecFile(f"is a directory, not an edgevec file ({action})", path=p)
    return from_os_error(exc, action, "choose a writable location with free space, or open "
                         "read-only", path=p)


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Header:
    preamble: Preamble
    slot: Slot
    other: Slot | None  # the other intact slot, if any (older generation)
    file_size: int


def read_header(fd: int, path) -> Header:
    """Rules F1-F7 and F9: preamble, slots, committed length against the file size, the
    directory's length against its limit."""
    raw = pread_exact(fd, DATA_START, 0)
    # the size after the slots: a writer appends a commit's bytes before its slot
    size = os.fstat(fd).st_size
    preamble = parse_preamble(raw, path)
    if size < DATA_START:
        raise TruncatedFile(f"file is {size} bytes, shorter than the {DATA_START}-byte header",
                            path=path, offset=size)
    slots = [parse_slot(raw[o:o + SLOT_SIZE], i) for i, o in enumerate(SLOT_OFFSETS)]
    intact = sorted((s for s in slots if s is not None), key=lambda s: -s.generation)
    if not intact:
        raise HeaderError("neither commit slot is intact (bad magic or checksum); the file "
                          "has no readable commit", path=path, offset=SLOT_OFFSETS[0])
    slot = intact[0]
    where = SLOT_OFFSETS[slot.index]
    if slot.committed_length > size:
        raise TruncatedFile(f"the commit (generation {slot.generation}) covers "
                            f"{slot.committed_length} bytes but the file has {size}; it was cut "
                            "short (incomplete copy or download?)", path=path, offset=size)
    if (slot.dir_offset < DATA_START or slot.dir_offset % ALIGN
            or slot.dir_offset + slot.dir_length > slot.committed_length):
        raise HeaderError(f"commit slot points at a directory [{slot.dir_offset}, "
                          f"{slot.dir_offset + slot.dir_length}) outside the aligned data area "
                          f"[{DATA_START}, {slot.committed_length})", path=path, offset=where)
    if slot.dir_length > MAX_DIRECTORY_BYTES:
        raise HeaderError(f"commit slot claims a directory of {slot.dir_length} bytes, over the "
                          f"{MAX_DIRECTORY_BYTES}-byte limit (SPEC rule F9); the file is "
                          "damaged or not from edgevec", path=path, offset=where)
    return Header(preamble, slot, intact[1] if len(intact) > 1 else None, size)


def read_directory_bytes(fd: int, slot: Slot, path) -> bytes:
    """The directory of `slot`, read in chunks with its CRC computed as it comes, checked
    against the slot's (rule F8) before anything parses it."""
    chunks, crc, pos, end = [], 0, slot.dir_offset, slot.dir_offset + slot.dir_length
    while pos < end:
        chunk = os.pread(fd, min(_CRC_CHUNK, end - pos), pos)
        if not chunk:
            raise TruncatedFile(f"the directory ends at byte {pos}, before its claimed end "
                                f"{end}; the file was cut short", path=path, offset=pos)
        crc = crc32(chunk, crc)
        chunks.append(chunk)
        pos += len(chunk)
    if crc != slot.dir_crc:
        raise ChecksumMismatch(
            f"directory checksum {crc:#010x} does not match the commit slot's "
            f"{slot.dir_crc:#010x}; the file is damaged", path=path, offset=slot.dir_offset)
    return b"".join(chunks)


def open_regular(path, *, write: bool = False) -> int:
    """A descriptor of `path` (read-only, or read-write for the writer), refusing anything
    but a regular file: a FIFO or a device would block the open or the reads (O_NONBLOCK
    keeps the open itself from waiting for a FIFO's writer)."""
    action = "opening for writing" if write else "opening"
    flags = ((os.O_RDWR if write else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(path, flags | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise os_error(exc, path, action) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAnEdgevecFile(f"is {file_kind(mode)}, not an edgevec file ({action}); "
                                   "pass the path of an index file", path=path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except OSError as exc:
        os.close(fd)
        raise os_error(exc, path, action) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


class Snapshot:
    """One committed, immutable state of an index file, memory-mapped read-only."""

    def __init__(self, path, *, inode: tuple[int, int] | None = None) -> None:
        """Map the newest commit of `path`. A writer passes the (st_dev, st_ino) of the
        file it holds locked, and the snapshot refuses any other file at that path.

        The snapshot opens its own descriptor: Python's mmap keeps a duplicate of the
        descriptor it maps, and a duplicate of the writer's would keep the writer's
        flock alive after the writer closed.
        """
        self.path = os.fspath(path)
        fd = open_regular(self.path)
        try:
            st = os.fstat(fd)
            self.inode = (st.st_dev, st.st_ino)
            if inode is not None and inode != self.inode:
                from ..errors import IndexStateError
                raise IndexStateError(f"{self.path} was replaced by another program while "
                                      "this writer held it; reopen the index")
            self.header = read_header(fd, self.path)
            slot = self.header.slot
            raw = read_directory_bytes(fd, slot, self.path)
            self.directory: Directory = parse_directory(
                raw, path=self.path, dir_offset=slot.dir_offset,
                committed_length=slot.committed_length,
                file_minor=self.header.preamble.minor)
            self._mm = mmap.mmap(fd, slot.committed_length, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise os_error(exc, path, "reading") from None
        finally:
            os.close(fd)
        self._views: dict[Section, np.ndarray] = {}
        self._deleted: np.ndarray | None = None
        self._checked: set[Section] = set()
        self._advise()

    def _advise(self) -> None:
        """Tell the kernel how each section is read. Rescoring touches a few scattered
        rows of the int8/f16 codes: without MADV_RANDOM each page fault on a cold file
        reads ahead megabytes (measured: 466 ms for 100 rows; 1-4 ms with the advice).
        Binary codes are scanned front to back and keep the default readahead."""
        advice = getattr(mmap, "MADV_RANDOM", None)
        if advice is None or not hasattr(self._mm, "madvise"):
            return
        page = mmap.PAGESIZE
        for sec in self.directory.sections:
            if sec.kind in ("int8", "f16") and sec.length >= 16 * page:
                start = sec.offset - sec.offset % page
                try:
                    self._mm.madvise(advice, start, sec.offset + sec.length - start)
                except (OSError, ValueError):
                    return  # advice is a hint; a kernel that refuses it changes nothing

    # --- basic facts -----------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self.header.slot.generation

    @property
    def meta(self) -> dict[str, Any]:
        return self.directory.meta

    @property
    def dim(self) -> int:
        return self.directory.dim

    @property
    def rows(self) -> int:
        return self.directory.rows

    @property
    def live(self) -> int:
        return self.directory.meta["rows"] - self.directory.meta["deleted"]

    def newer(self) -> "Snapshot | None":
        """A snapshot of the file's newest commit when that is not this one (another
        process wrote, or replaced the file by compaction), else None."""
        new = Snapshot(self.path)
        if new.inode == self.inode and new.generation == self.generation:
            new.close()
            return None
        return new

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- readers in threads: a snapshot is unmapped once, after its last reader ----------

    # One lock for every snapshot's count: it guards a few integer updates per read.
    _HOLD = threading.Lock()
    _readers = 0
    _closed = False

    def acquire(self) -> bool:
        """Hold the map open for one read (release() ends it): False once the snapshot is
        closed. A reader holding it may go on reading after another thread closes it (a
        refresh, a commit, Index.close swaps in another snapshot): the map is released
        by whoever lets go of it last."""
        with Snapshot._HOLD:
            if self._closed:
                return False
            self._readers += 1
            return True

    def release(self) -> None:
        """End a read begun by a successful acquire()."""
        with Snapshot._HOLD:
            self._readers -= 1
            last = self._closed and self._readers == 0
        if last:
            self._unmap()

    def close(self) -> None:
        """Release the map now, or when the last reader holding it (acquire) lets go."""
        with Snapshot._HOLD:
            self._closed = True
            last = self._readers == 0
        if last:
            self._unmap()

    def _unmap(self) -> None:
        self._views.clear()
        self._deleted = None
        try:
            self._mm.close()
        except BufferError:
            # NumPy views handed out earlier still point into the map; it is unmapped
            # when the last of them is garbage-collected.
            pass

    # --- arrays ----------------------------------------------------------------------

    def array(self, sec: Section) -> np.ndarray:
        """A read-only, zero-copy view of a section (bounds were checked at parse time)."""
        view = self._views.get(sec)
        if view is None:
            dt = dtype_of(sec.dtype)
            count = sec.length // dt.itemsize
            view = np.frombuffer(self._mm, dtype=dt, count=count, offset=sec.offset)
            view = view.reshape(sec.shape)
            self._views[sec] = view
        return view

    def segment_array(self, kind: str, segment: int) -> np.ndarray | None:
        sec = self.directory.by_segment.get((kind, segment))
        return None if sec is None else self.array(sec)

    def table(self, prefix: str, segment: int) -> StringTable | None:
        off = self.directory.by_segment.get((prefix + ".offsets", segment))
        if off is None:
            return None
        data = self.directory.by_segment[(prefix + ".bytes", segment)]
        return StringTable(self.array(off), self.array(data), path=self.path, where=off.offset)

    def blob_names(self) -> list[str]:
        return sorted(self.directory.blobs)

    def blob(self, name: str) -> bytes | None:
        sec = self.directory.blobs.get(name)
        return None if sec is None else bytes(self.array(sec))

    def calibration(self) -> np.ndarray | None:
        """float32 [2, dim]: per-dimension offset and scale of the int8 codes."""
        sec = self.directory.calibration
        if sec is None:
            return None
        cal = self.array(sec)
        if sec not in self._checked:
            c = cal.astype(np.float64)
            top = np.abs(c[0]) + 127 * c[1]
            if not (np.isfinite(c).all() and (c[1] > 0).all()
                    and (top < np.finfo(np.float32).max).all()):
                raise FormatError("calibration holds a non-finite offset, a scale <= 0 or a "
                                  "range beyond float32",
                                  path=self.path, offset=sec.offset)
            self._checked.add(sec)
        return cal

    def transform_code(self) -> dict | None:
        """The compact index's transform code (edgevec.codecs: mean, rotation, scale,
        bits, quantizer) from meta.transform and the transform.model section, checked
        once: every number finite, every scale > 0 (else a FormatError)."""
        model = self._checked_model("transform.model", lambda a: bool((a[1] > 0).all()),
                                    "a non-finite number or a scale <= 0")
        if model is None:
            return None
        t = self.meta["transform"]
        return {"mean": model[0], "scale": model[1], "rotation": model[2:],
                "bits": np.asarray(t["bits"], dtype=np.int64), "quantizer": t["quantizer"]}

    def _checked_model(self, kind: str, ok, rule: str) -> np.ndarray | None:
        """An index-scope float32 section, checked once by ok(array) (else a FormatError
        saying what `rule` requires), or None when the file has none."""
        sec = self.directory.by_segment.get((kind, None))
        if sec is None:
            return None
        a = self.array(sec)
        if sec not in self._checked:
            if not (np.isfinite(a).all() and ok(a)):
                raise FormatError(f"{kind} holds {rule}", path=self.path, offset=sec.offset)
            self._checked.add(sec)
        return a

    @property
    def code_dim(self) -> int:
        """The dimension the vector codes store (meta.projection's dims, else dim)."""
        return code_dim(self.meta) if self.dim else 0

    def float8(self) -> tuple[str, np.ndarray] | None:
        """(kind "e4m3" or "e5m2", per-dimension scale float32 [code_dim]) of an index
        whose rescoring codes are float8, checked once (finite, > 0), or None."""
        kind = next((c[2:] for c in self.meta["codecs"] if c.startswith("f8")), None)
        if kind is None:
            return None
        scale = self._checked_model("float8.scale", lambda a: bool((a > 0).all()),
                                    "a non-finite number or a scale <= 0")
        return None if scale is None else (kind, scale)

    def projection(self) -> Projection | None:
        """The index's stored projection (edgevec.codecs.Projection): None without
        meta.projection or, for "pca", before the first rows fitted it. The pca matrix is
        checked once (every number finite)."""
        p = self.meta.get("projection")
        if not p:
            return None
        normalise = self.meta["metric"] == "cosine"
        if p["kind"] == "prefix":
            return Projection("prefix", p["dims"], self.dim, normalise=normalise)
        m = self._checked_model("projection", lambda a: True, "a non-finite number")
        return None if m is None else Projection("pca", p["dims"], self.dim,
                                                 mean=m[0], components=m[1:])

    def transform_blocks(self, seg: int) -> np.ndarray | None:
        """uint8 [blocks, bytes, 512] transform codes of segment `seg` (byte-major blocks
        of rows, edgevec.codecs.transform_blocks), or None."""
        a = self.segment_array("transform", seg)
        if a is None:
            return None
        block = self.meta["transform"]["block"]
        return a.reshape(len(a), a.shape[1] // block, block)

    def bytes_per_row(self) -> dict[str, int]:
        """Bytes each stored row takes in each vector code (meta.codecs)."""
        d = self.code_dim
        sizes = {"binary": 8 * -(-d // 64), "int8": d, "f16": 2 * d, "f8e4m3": d, "f8e5m2": d}
        if self.meta.get("transform"):
            sizes["transform"] = transform_bytes(self.meta["transform"]["bits"])
        return {c: sizes[c] for c in self.meta["codecs"] if c in sizes}

    # --- rows and segments: the one row API (nothing else reads sections by kind) ---------

    @property
    def segments(self) -> list[SegmentInfo]:
        """(rows, row_start) of every segment, in row order."""
        return self.directory.segments

    @property
    def has_f16(self) -> bool:
        return "f16" in self.meta["codecs"]

    def segment_codes(self, seg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The (binary, int8, float16 or None) code arrays of segment `seg`."""
        return (self.segment_array("binary", seg), self.segment_array("int8", seg),
                self.segment_array("f16", seg))

    def segment_ids(self, seg: int) -> list[int | str]:
        """The ids of every row of segment `seg` (deleted ones too), in row order."""
        if self.meta["id_type"] == "int":
            return self.segment_array("ids.int", seg).tolist()
        table = self.table("ids", seg)
        return [] if table is None else table.all()

    def deleted_in(self, seg: int) -> np.ndarray | None:
        """bool [rows of `seg`]: True for its deleted rows; None when none are deleted."""
        if not self.meta["deleted"]:
            return None
        info = self.directory.segments[seg]
        part = self.deleted_mask()[info.row_start:info.row_start + info.rows]
        return part if part.any() else None

    def live_rows(self, seg: int | None = None) -> np.ndarray:
        """int64 rows not deleted: global rows of the file, or local rows of `seg`."""
        if seg is None:
            return (np.flatnonzero(~self.deleted_mask()) if self.meta["deleted"]
                    else np.arange(self.rows, dtype=np.int64))
        deleted = self.deleted_in(seg)
        n = self.directory.segments[seg].rows
        return np.arange(n, dtype=np.int64) if deleted is None else np.flatnonzero(~deleted)

    def _by_segment(self, rows) -> tuple[np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
        """Global rows -> (rows as int64, [(segment, positions in rows, local rows)])."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if not len(rows):
            return rows, []
        if rows.min() < 0 or rows.max() >= self.rows:
            bad = int(rows[(rows < 0) | (rows >= self.rows)][0])
            raise InvalidInput(f"row {bad} is outside [0, {self.rows}) of {self.path}")
        ends = np.array([g.row_start + g.rows for g in self.directory.segments], np.int64)
        seg_of = np.searchsorted(ends, rows, side="right")  # empty segments are skipped
        if len(ends) == 1:
            return rows, [(0, np.arange(len(rows)), rows)]
        out = []
        for g in np.unique(seg_of).tolist():
            pos = np.flatnonzero(seg_of == g)
            out.append((g, pos, rows[pos] - self.directory.segments[g].row_start))
        return rows, out

    def vectors(self, rows) -> np.ndarray:
        """float32 [len(rows), dim] of global `rows`: the stored vectors decoded
        (`stored_vectors`), taken back through the projection when the index has one
        (edgevec.codecs.Projection.restore)."""
        stored = self.stored_vectors(rows)
        projection = self.projection()
        return stored if projection is None else projection.restore(stored)

    def stored_vectors(self, rows) -> np.ndarray:
        """float32 [len(rows), code_dim] of global `rows` as the codes hold them: the
        stored float16 vectors, else the int8 or float8 codes decoded, else the transform
        codes decoded."""
        rows, groups = self._by_segment(rows)
        out = np.empty((len(rows), self.code_dim), dtype=np.float32)
        for g, pos, local in groups if self.dim else ():  # lexical-only: [n, 0]
            f16 = self.segment_array("f16", g)
            if f16 is not None:
                out[pos] = f16[local]
            elif "int8" in self.meta["codecs"]:
                out[pos] = dequantize_int8(self.segment_array("int8", g)[local],
                                           self.calibration())
            elif (float8 := self.float8()) is not None:
                out[pos] = dequantize_float8(self.segment_array("float8", g)[local],
                                             float8[1], float8[0])
            else:
                code = self.transform_code()
                levels = transform_unpack(block_rows(self.transform_blocks(g), local), code)
                out[pos] = code["mean"] + rotate(transform_decode(levels, code),
                                                 code["rotation"].T)
        return out

    def ids_of(self, rows) -> list[int | str]:
        """The ids of global `rows`, in their order."""
        rows, groups = self._by_segment(rows)
        out: list = [None] * len(rows)
        for g, pos, local in groups:
            if self.meta["id_type"] == "int":
                values = self.segment_array("ids.int", g)[local].tolist()
            else:
                values = self.table("ids", g).get_many(local)
            for p, v in zip(pos.tolist(), values):
                out[p] = v
        return out

    def texts_of(self, rows) -> list[str | None]:
        """The texts of global `rows` (None for a row without one)."""
        return self._strings_of("texts", rows, lambda raw, g, i: raw or None)

    def metadata_of(self, rows) -> list[dict[str, Any] | None]:
        """The metadata dicts of global `rows` (None for a row without metadata)."""
        return self._strings_of("meta", rows, self._parse_metadata)

    def _strings_of(self, prefix: str, rows, convert) -> list:
        rows, groups = self._by_segment(rows)
        out: list = [None] * len(rows)
        for g, pos, local in groups:
            table = self.table(prefix, g)
            if table is not None:
                for p, i, raw in zip(pos.tolist(), local.tolist(), table.get_many(local)):
                    out[p] = convert(raw, g, i)
        return out

    def _parse_metadata(self, raw: str, seg: int, local: int) -> dict[str, Any] | None:
        if raw == "":
            return None
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise FormatError(f"metadata of row {local} in segment {seg} is not a JSON object",
                              path=self.path, offset=self.table("meta", seg).where)
        return value

    def postings(self, seg: int):
        """The lexical postings of segment `seg` (views of the file), or None when the
        index keeps none."""
        if ("lex.df", seg) not in self.directory.by_segment:
            return None
        arr = self.segment_array
        totals = arr("lex.totals", seg)
        n = self.directory.segments[seg].rows
        if int(totals[0]) != n:
            raise FormatError(f"lexical totals of segment {seg} count {int(totals[0])} rows, "
                              f"the segment has {n}", path=self.path,
                              offset=self.directory.by_segment[("lex.totals", seg)].offset)
        return Postings(self.table("lex.terms", seg), arr("lex.df", seg),
                        arr("lex.post.offsets", seg), arr("lex.post.data", seg),
                        arr("lex.norms", seg), totals)

    def column(self, seg: int, name: str) -> "Column | None":
        """The metadata column `name` of segment `seg`, or None when the segment lacks it."""
        parts = self.directory.columns.get((seg, name))
        if parts is None:
            return None
        return Column(self, self.directory.column_types[(seg, name)], parts)


    def deleted_mask(self) -> np.ndarray:
        """bool [rows]: True for deleted rows. Built on first use from the tombstones."""
        if self._deleted is None:
            mask = np.zeros(self.rows, dtype=bool)
            count = 0
            for sec in self.directory.tombstones:
                rows = self.array(sec)
                count += len(rows)
                if len(rows) and int(rows.max()) >= self.rows:
                    raise SectionOutOfBounds(
                        f"tombstone row {int(rows.max())} is outside [0, {self.rows})",
                        path=self.path, offset=sec.offset)
                mask[rows] = True
            if int(mask.sum()) != count:
                raise FormatError(f"tombstones name {count} rows but only {int(mask.sum())} "
                                  "distinct ones", path=self.path,
                                  offset=self.directory.tombstones[0].offset)
            mask.flags.writeable = False
            self._deleted = mask
        return self._deleted

    def _candidates(self, seg: int, key: int):
        keys = self.segment_array("idkeys", seg)
        rows = self.segment_array("idrows", seg)
        n = self.directory.segments[seg].rows
        i = int(np.searchsorted(keys, np.uint64(key), side="left"))
        while i < n and int(keys[i]) == key:
            local = int(rows[i])
            if local >= n:
                sec = self.directory.by_segment[("idrows", seg)]
                raise SectionOutOfBounds(f"idrows entry {i} = {local} is outside [0, {n})",
                                         path=self.path, offset=sec.offset)
            yield local
            i += 1

    def find(self, ident: int | str) -> int | None:
        """Global row of the live row with id `ident`, or None."""
        id_type = self.meta["id_type"]
        if id_type is None:
            return None
        key = int(id_keys([ident], id_type)[0])
        deleted = self.deleted_mask() if self.meta["deleted"] else None
        for seg in range(len(self.directory.segments) - 1, -1, -1):
            start = self.directory.segments[seg].row_start
            for local in self._candidates(seg, key):
                if deleted is not None and deleted[start + local]:
                    continue
                if self.ids_of([start + local])[0] == ident:
                    return start + local
        return None

    def find_many(self, ids) -> np.ndarray:
        """Global rows (int64, -1 when absent) of the live rows with `ids` (of the index's
        id type)."""
        out = np.full(len(ids), -1, dtype=np.int64)
        if not len(ids) or self.meta["id_type"] is None:
            return out
        keys = id_keys(ids, self.meta["id_type"])
        for seg in range(len(self.directory.segments)):
            n = self.directory.segments[seg].rows
            if n == 0:
                continue
            skeys = self.segment_array("idkeys", seg)
            pos = np.searchsorted(skeys, keys)
            hit = (pos < n) & (skeys[np.minimum(pos, n - 1)] == keys)
            for j in np.flatnonzero(hit):  # rare: only ids that already exist, or collide
                row = self.find(ids[j])
                if row is not None:
                    out[j] = row
        return out

    def _verify_postings(self, seg: int) -> None:
        """V7: a segment's postings decode to what its df, norms and totals say, over a
        term table sorted by UTF-8 bytes."""
        p = self.postings(seg)
        if p is None:
            return
        from ..kernels.bm25 import check_postings
        sec = self.directory.by_segment[("lex.post.data", seg)]
        p.terms.check()
        raw = [p.terms.data[int(a):int(b)].tobytes() for a, b in
               zip(p.terms.offsets[:-1], p.terms.offsets[1:])]
        if any(a >= b for a, b in zip(raw, raw[1:])):
            raise FormatError(f"the lexical terms of segment {seg} are not strictly sorted",
                              path=self.path, offset=p.terms.where)
        lengths = np.zeros(len(p.norms), dtype=np.int64)
        bad = check_postings(p.data, p.offsets, p.df, lengths)
        if bad:
            where = "its offsets" if bad < 0 else f"term {bad - 1}"
            raise FormatError(f"the lexical postings of segment {seg} are damaged ({where})",
                              path=self.path, offset=sec.offset)
        if int(p.totals[1]) != int(lengths.sum()) or not np.array_equal(
                length_to_norm(lengths), p.norms):
            raise FormatError(f"the lexical totals or norms of segment {seg} do not match its "
                              "postings", path=self.path, offset=sec.offset)

    def info(self) -> dict[str, Any]:
        """Header and directory facts, without touching rows."""
        d = self.directory
        by_kind: dict[str, int] = {}
        for sec in d.sections:
            by_kind[sec.kind] = by_kind.get(sec.kind, 0) + sec.length
        meta = self.meta
        return {
            "path": self.path,
            "format_version": f"{self.header.preamble.major}.{self.header.preamble.minor}",
            "reader_version": f"{VERSION_MAJOR}.{VERSION_MINOR}",
            "generation": self.generation, "dim": self.dim, "metric": meta["metric"],
            "rows": self.live, "stored_rows": self.rows, "deleted": meta["deleted"],
            "segments": len(d.segments), "id_type": meta["id_type"],
            "codecs": list(meta["codecs"]), "bytes_per_row": self.bytes_per_row(),
            "projection": meta.get("projection"),
            "fields": dict(meta["fields"]),
            "rescore_m": meta.get("rescore_m"), "embedder": meta.get("embedder"),
            "lexical": meta.get("lexical"), "lexical_only": self.dim == 0,
            "lexical_bytes": sum(v for k, v in by_kind.items() if k.startswith("lex.")),
            "user": meta["user"], "file_bytes": self.header.file_size,
            "committed_bytes": self.header.slot.committed_length, "section_bytes": by_kind,
        }

    # --- verification ------------------------------------------------------------------

    def verify(self) -> dict[str, Any]:
        """Check every section checksum and the row-level rules (V1-V6 of SPEC.md)."""
        d = self.directory
        nbytes = 0
        for sec in d.sections:
            view = memoryview(self._mm)[sec.offset:sec.offset + sec.length]
            value = 0
            for start in range(0, sec.length, _CRC_CHUNK):
                value = crc32(view[start:start + _CRC_CHUNK], value)
            view.release()
            if value != sec.crc32:
                raise ChecksumMismatch(
                    f"{sec.kind} section (segment {sec.segment}) checksum {value:#010x} "
                    f"does not match the stored {sec.crc32:#010x}", path=self.path,
                    offset=sec.offset)
            nbytes += sec.length
        for seg, info in enumerate(d.segments):
            for prefix in ("ids", "texts", "meta"):
                t = self.table(prefix, seg)
                if t is not None:
                    t.check()
            keys = self.segment_array("idkeys", seg)
            rows = self.segment_array("idrows", seg)
            sec = d.by_segment[("idrows", seg)]
            if info.rows and (bool(np.any(keys[1:] < keys[:-1]))):
                raise FormatError(f"idkeys of segment {seg} are not sorted", path=self.path,
                                  offset=d.by_segment[("idkeys", seg)].offset)
            if not np.array_equal(np.sort(rows), np.arange(info.rows, dtype=rows.dtype)):
                raise FormatError(f"idrows of segment {seg} is not a permutation of "
                                  f"0..{info.rows - 1}", path=self.path, offset=sec.offset)
            ids = self.segment_ids(seg)
            if not np.array_equal(id_keys(ids, self.meta["id_type"])[rows], keys):
                raise FormatError(f"idkeys of segment {seg} do not match its ids",
                                  path=self.path, offset=sec.offset)
            for name in self.meta["fields"]:
                col = self.column(seg, name)
                if col is not None and col.ctype == "str":
                    table = col.dictionary()
                    table.check()
                    codes = col.array("codes")
                    if len(codes) and (int(codes.min()) < -1 or int(codes.max()) >= len(table)):
                        raise FormatError(f"column {name!r} of segment {seg} has codes outside "
                                          f"[-1, {len(table)})", path=self.path,
                                          offset=col.where)
            dim = self.code_dim
            if ("binary", seg) in d.by_segment and dim % 64:
                # padding bits past `dim` must be zero so Hamming distances ignore them
                last = self.segment_array("binary", seg)[:, words_for(dim) - 1]
                pad = np.uint64(~((1 << (dim % 64)) - 1) & 0xFFFFFFFFFFFFFFFF)
                if info.rows and bool(np.any(last & pad)):
                    raise FormatError(f"binary codes of segment {seg} set bits past dim "
                                      f"{dim}", path=self.path,
                                      offset=d.by_segment[("binary", seg)].offset)
            if ("float8", seg) in d.by_segment and info.rows:
                # V8: no NaN or infinity codes (an encoder saturates instead)
                kind = next(c[2:] for c in self.meta["codecs"] if c.startswith("f8"))
                bad = ~np.isfinite(float8_table(kind))
                codes = self.segment_array("float8", seg)
                if any(bool(bad[codes[a:a + _CHECK_ROWS]].any())
                       for a in range(0, len(codes), _CHECK_ROWS)):
                    raise FormatError(f"float8 codes of segment {seg} hold NaN or infinity "
                                      f"codes ({kind})", path=self.path,
                                      offset=d.by_segment[("float8", seg)].offset)
        for seg in range(len(d.segments)):
            self._verify_postings(seg)
        self.deleted_mask()  # checks the tombstones
        # every live id appears once
        if self.rows:
            seen: dict = {}
            for seg in range(len(d.segments)):
                ids = self.segment_ids(seg)
                for local in self.live_rows(seg).tolist():
                    ident = ids[local]
                    if ident in seen:
                        raise FormatError(f"id {ident!r} is live in two rows", path=self.path)
                    seen[ident] = True
        return {"path": self.path, "generation": self.generation, "rows": self.rows,
                "live": self.live, "sections": len(d.sections), "bytes_checked": nbytes,
                "ok": True}


class Column:
    """One metadata column of one segment: "str" columns hold dictionary codes (-1 =
    absent) and a sorted dictionary; "int", "float" and "bool" ones values and validity."""

    def __init__(self, snap: Snapshot, ctype: str, parts: dict[str, Section]) -> None:
        self.ctype = ctype
        self._snap, self._parts = snap, parts

    def array(self, part: str) -> np.ndarray:
        return self._snap.array(self._parts[part])

    def present(self) -> np.ndarray:
        """bool: rows that have a value."""
        if self.ctype == "str":
            return self.array("codes") >= 0
        return self.array("valid").astype(bool)

    def dictionary(self) -> StringTable:
        """The sorted distinct values of a "str" column."""
        off = self._parts["dict.offsets"]
        return StringTable(self._snap.array(off), self.array("dict.bytes"),
                           path=self._snap.path, where=off.offset)

    @property
    def where(self) -> int:
        """File offset of the column, for error messages."""
        return min(sec.offset for sec in self._parts.values())
