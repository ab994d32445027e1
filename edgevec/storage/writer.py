"""Write .edgevec files: create, append a commit, compact. One writer at a time.

The commit protocol (SPEC.md "Commits"): new sections and a new directory are written
after the committed bytes, fsync'd, and only then does the inactive commit slot receive
the new generation (and fsync again). A crash before the slot write leaves the previous
slot, which still describes untouched bytes; a torn slot write fails its checksum and the
reader falls back to the other slot. Nothing committed is ever overwritten in place.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgevecError, IndexStateError, LockedError, WriteFailed
from ..fileio import fsync_parent, remove_stale_temp_files, temp_path
from .directory import Directory, Section, SegmentInfo
from .layout import (
    ALIGN,
    DATA_START,
    MAX_DIRECTORY_BYTES,
    SLOT_OFFSETS,
    align_up,
    crc32,
    dtype_code,
    minor_for,
    pack_preamble,
    pack_slot,
)
from .reader import Snapshot, open_regular, os_error

# Every byte edgevec writes goes through this name, so tests can inject a full disk or a
# crash at an exact byte.
_pwrite = os.pwrite
_ZEROS = bytes(ALIGN)
NEW_SEGMENT = -1  # placeholder segment number in a Pending of the segment being added


@dataclass
class Pending:
    """One section to write: `data` is an array or an iterable of array chunks."""

    kind: str
    data: np.ndarray | Iterable[np.ndarray]
    dtype: str
    shape: tuple[int, ...]
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, kind: str, array: np.ndarray, **extra) -> "Pending":
        array = np.ascontiguousarray(array)
        return cls(kind, array, dtype_code(array.dtype), tuple(array.shape), extra)


def _write_all(fd: int, data, offset: int) -> int:
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        n = _pwrite(fd, view[done:], offset + done)
        if n <= 0:
            raise OSError(errno.EIO, "write returned no progress")
        done += n
    return done


def empty_directory(meta: dict) -> Directory:
    return Directory(meta=meta, segments=[], sections=[])


def write_fresh(fd: int, directory: Directory, pending: list[Pending],
                segment_rows: int | None) -> None:
    """Write a complete new file (header, sections, directory, slot) into `fd`."""
    _write_all(fd, pack_preamble(minor_for(directory.meta)), 0)
    _write_all(fd, bytes(DATA_START - 64), 64)
    _append_commit(fd, directory, pending, segment_rows, committed_length=DATA_START,
                   generation=1, slot_index=0)


def _append_commit(fd: int, d: Directory, pending: list[Pending], segment_rows: int | None,
                   *, committed_length: int, generation: int, slot_index: int) -> None:
    """Write sections + directory after `committed_length`, fsync, then the slot, fsync."""
    pos = align_up(committed_length)
    if pos > committed_length:
        _write_all(fd, _ZEROS[:pos - committed_length], committed_length)
    seg_index = len(d.segments)
    if segment_rows is not None:
        start = d.segments[-1].row_start + d.segments[-1].rows if d.segments else 0
        d.segments.append(SegmentInfo(segment_rows, start))
        d.meta["rows"] = start + segment_rows
    for p in pending:
        extra = dict(p.extra)
        if extra.get("segment") == NEW_SEGMENT:
            extra["segment"] = seg_index
        if p.kind == "tombstones":
            extra["commit"] = generation
        length, crc = 0, 0
        chunks = [p.data] if isinstance(p.data, np.ndarray) else p.data
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk)
            if chunk.nbytes:
                _write_all(fd, chunk, pos + length)
                crc = crc32(memoryview(chunk).cast("B"), crc)
                length += chunk.nbytes
        expected = int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize
        if length != expected:  # a programming error in a caller, never user input
            raise WriteFailed(f"internal: section {p.kind} wrote {length} bytes, "
                              f"expected {expected}")
        sec = Section(p.kind, pos, length, p.dtype, tuple(p.shape), crc, **extra)
        d.sections.append(sec)
        end = pos + length
        pos = align_up(end)
        if pos > end:
            _write_all(fd, _ZEROS[:pos - end], end)
    raw = d.to_bytes()
    if len(raw) > MAX_DIRECTORY_BYTES:  # readers refuse it (F9): keep the last commit
        raise IndexStateError(f"this commit's directory would be {len(raw)} bytes, over the "
                              f"{MAX_DIRECTORY_BYTES}-byte limit of formats/SPEC.md (F9): "
                              f"the index has {len(d.segments)} segments; compact it "
                              "(edgevec compact FILE) and add again")
    _write_all(fd, raw, pos)
    end = pos + len(raw)
    if os.fstat(fd).st_size > end:
        os.ftruncate(fd, end)  # drop bytes of an earlier, uncommitted attempt
    os.fsync(fd)
    _write_all(fd, pack_slot(generation, pos, len(raw), end, crc32(raw)),
               SLOT_OFFSETS[slot_index])
    os.fsync(fd)


def create_file(path: str, meta: dict) -> None:
    """Write an empty index file at `path`, a fresh name (fileio.temp_path: it must not
    exist). Index.create then opens it, adds what the index starts with (a model) and
    publishes it under the name the user gave: complete or not at all."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o644)
    except OSError as exc:
        raise os_error(exc, path, "creating the index file") from None
    try:
        write_fresh(fd, empty_directory(copy.deepcopy(meta)), [], None)
    except OSError as exc:
        raise os_error(exc, path, "creating the index file") from None
    finally:
        os.close(fd)


def _lock(fd: int, path: str, timeout: float) -> None:
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockedError(
                    f"{path} is open for writing by another writer; close it first, wait with "
                    f"lock_timeout=SECONDS (waited {timeout:g} s), or open it read-only with "
                    "edgevec.open(path)") from None
            time.sleep(0.02)


class Writer:
    """The single writer of an index file: holds an exclusive OS lock (flock) on it."""

    def __init__(self, path, *, lock_timeout: float = 0.0) -> None:
        self.path = os.fspath(path)
        while True:
            fd = open_regular(self.path, write=True)
            try:
                _lock(fd, self.path, lock_timeout)
                # A compaction may have replaced the file between open and lock: then we
                # hold the lock of an orphaned inode; start over on the new file.
                st, now = os.fstat(fd), os.stat(self.path)
                if (st.st_dev, st.st_ino) == (now.st_dev, now.st_ino):
                    break
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        self.fd = fd
        remove_stale_temp_files(self.path)
        try:
            self.snapshot = Snapshot(self.path, inode=self._inode())
        except BaseException:
            os.close(fd)
            raise

    def _inode(self) -> tuple[int, int]:
        st = os.fstat(self.fd)
        return st.st_dev, st.st_ino

    def renamed(self, path: str) -> None:
        """The file this writer holds now has the name `path` (a new index published under
        its final name: fileio.replacing); the lock stays."""
        self.path = path
        self._refresh()

    def close(self) -> None:
        if self.fd >= 0:
            self.snapshot.close()
            os.close(self.fd)  # releases the lock
            self.fd = -1

    def _fail(self, exc: OSError, action: str, committed_length: int) -> WriteFailed:
        try:
            # Drop the partial bytes, unless the new slot reached the disk after all (the
            # failure came from the final fsync): then those bytes are committed.
            from .reader import read_header
            if read_header(self.fd, self.path).slot.generation == self.snapshot.generation:
                os.ftruncate(self.fd, committed_length)
        except (OSError, EdgevecError):
            pass
        try:
            self._swap(Snapshot(self.path, inode=self._inode()))
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        reason = exc.strerror or str(exc)
        hint = " Free disk space and retry." if exc.errno in (errno.ENOSPC, errno.EDQUOT,
                                                               errno.EFBIG) else ""
        return WriteFailed(f"{self.path}: {action} failed ({reason}); nothing of this batch "
                           f"was committed and the index still holds generation "
                           f"{self.snapshot.generation} with {self.snapshot.live} rows.{hint}")

    def commit(self, pending: list[Pending], *, segment_rows: int | None,
               meta: dict | None = None) -> Snapshot:
        """Append one commit: new sections, optionally a new segment of `segment_rows` rows,
        and meta updates. Returns the new snapshot."""
        snap = self.snapshot
        d = Directory(meta=copy.deepcopy(snap.directory.meta),
                      segments=list(snap.directory.segments),
                      sections=list(snap.directory.sections))
        if meta:
            d.meta.update(copy.deepcopy(meta))
        d.meta["deleted"] = snap.meta["deleted"] + sum(
            p.shape[0] for p in pending if p.kind == "tombstones")
        slot = snap.header.slot
        try:
            _append_commit(self.fd, d, pending, segment_rows,
                           committed_length=slot.committed_length,
                           generation=slot.generation + 1, slot_index=1 - slot.index)
        except OSError as exc:
            raise self._fail(exc, "appending a commit", slot.committed_length) from None
        return self._refresh()

    def _refresh(self) -> Snapshot:
        return self._swap(Snapshot(self.path, inode=self._inode()))

    def _swap(self, new: Snapshot) -> Snapshot:
        """Make `new` the writer's snapshot, then close the old one: in that order, so a
        reader in another thread that finds the old one closed finds `new` in its place
        (Snapshot.acquire); one still reading the old one finishes on it."""
        old, self.snapshot = self.snapshot, new
        old.close()
        return new

    def replace_with(self, directory_meta: dict, pending: list[Pending],
                     segment_rows: int | None) -> Snapshot:
        """Write a fresh file with one segment and atomically put it in place of ours."""
        tmp = temp_path(self.path)
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         0o644)
        except OSError as exc:
            raise os_error(exc, self.path, "creating the compacted file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours before anyone can see it
            write_fresh(fd, empty_directory(directory_meta), pending, segment_rows)
            os.replace(tmp, self.path)
            fsync_parent(self.path)
        except OSError as exc:
            os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
            reason = exc.strerror or str(exc)
            raise WriteFailed(f"{self.path}: compaction failed ({reason}); the original file "
                              "is unchanged") from None
        except BaseException:
            os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        old_fd, self.fd = self.fd, fd
        os.close(old_fd)
        return self._swap(Snapshot(self.path, inode=self._inode()))
