"""Small file helpers every layer shares: content digests and durable writes.

A write is durable when its bytes and the directory entry naming it have reached the
disk: write, flush, fsync the file, rename into place, fsync the directory.
"""

from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    """Hex sha256 of a file's content, read in 1 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_path(path: str) -> None:
    """fsync a file or a directory by name (best effort for directories: some file
    systems refuse it, and then there is nothing more to do)."""
    directory = os.path.isdir(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def fsync_parent(path: str) -> None:
    """fsync the directory that holds `path` (makes a rename or a new name durable)."""
    fsync_path(os.path.dirname(os.path.abspath(path)))


def write_file(path: str, data: bytes, *, atomic: bool = True) -> None:
    """Write `data` to `path` durably. Atomic (the default): through a temporary file
    renamed over `path`, so a reader sees the old content or the new, never a part."""
    target = path + ".tmp" if atomic else path
    with open(target, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if atomic:
        os.replace(target, path)
        fsync_parent(path)
