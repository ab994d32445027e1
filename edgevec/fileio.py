"""Small file helpers every layer shares: content digests, durable writes, and files
written completely or not at all under their final name.

A write is durable when its bytes and the directory entry naming it have reached the
disk: write, flush, fsync the file, rename into place, fsync the directory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

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


def temp_path(path: str) -> str:
    """A fresh temporary name beside `path` (same folder, so a rename is atomic), hidden,
    naming this process: `.NAME.PID.RANDOM.tmp` (see remove_stale_temp_files)."""
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(head, f".{tail}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def remove_stale_temp_files(path: str) -> list[str]:
    """Delete the temporary files of `path` (temp_path) that processes which no longer run
    left behind (killed while creating, compacting or building it)."""
    head, tail = os.path.split(os.path.abspath(path))
    prefix = f".{tail}."
    removed = []
    try:
        names = os.listdir(head)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        parts = name[len(prefix):-len(".tmp")].split(".")
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        if _alive(int(parts[0])):  # ours or another live process: maybe in use
            continue
        try:
            os.unlink(os.path.join(head, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there, not probe it
        return True  # (issue 24: a Windows probe belongs in the platform layer)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(tmp: str, path: str, *, overwrite: bool) -> None:
    """Put the complete file `tmp` in place under `path` durably: fsync it, rename it over
    `path` (overwrite) or link it to `path` (never clobbering a file that appeared
    meanwhile: FileExistsError), fsync the folder."""
    fsync_path(tmp)
    if overwrite:
        os.replace(tmp, path)
    else:
        os.link(tmp, path)
        os.unlink(tmp)
    fsync_parent(path)


@contextmanager
def replacing(path: str, *, overwrite: bool) -> Iterator[str]:
    """Write a file completely or not at all under `path`: yields a temporary name beside
    it (paths.check_target checks `path` first), published under `path` when the block
    ends (publish), removed when it raises, so an old file at `path` stays untouched
    until the new one is complete. Temporary files of dead processes are removed first."""
    from .paths import check_target
    check_target(path, overwrite)
    remove_stale_temp_files(path)
    tmp = temp_path(path)
    try:
        yield tmp
        try:
            publish(tmp, path, overwrite=overwrite)
        except FileExistsError:
            from .errors import IndexExists
            raise IndexExists(f"{path} already exists (created while this one was "
                              "written); pass overwrite=True (--overwrite) to replace "
                              "it") from None
        except OSError as exc:
            from .errors import from_os_error
            raise from_os_error(exc, "putting the finished file in place", "free disk space "
                                "or choose a writable folder, and run it again; any old "
                                "file there is unchanged", path) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
