"""File paths given by users: the checks every entry point that takes a path makes, and
opening a user's file without hanging on one that is not a regular file.

Below every other module but errors: the embedder checks model directories with it too."""

from __future__ import annotations

import os
import stat
from typing import IO, Any

from .errors import IndexExists, InvalidInput


def check_path(path: Any, what: str = "path") -> str:
    """A file path as str: str, bytes or os.PathLike, non-empty, encodable for the OS."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InvalidInput(f"{what} must be a str or os.PathLike, got "
                           f"{type(path).__name__} {path!r:.60}")
    p = os.fsdecode(os.fspath(path))
    if not p or "\0" in p:
        raise InvalidInput(f"{what} {p!r:.60} is empty or holds a NUL character")
    try:
        os.fsencode(p)
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} {p!r:.60} cannot be encoded for this file system") from None
    return p


def file_kind(mode: int) -> str:
    """What a stat mode names, for messages: "a regular file", "a FIFO", ..."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str, what: str, mode: str = "rb", **kwargs: Any) -> IO:
    """open(path, mode, **kwargs) for reading a user's file, refusing anything but a
    regular file (InvalidInput naming `what`, the path and its kind): opened with
    O_NONBLOCK, so a FIFO with no writer cannot hang the call, and checked with fstat on
    the descriptor itself (no window between check and open). OSError as open's."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                 | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"{what} {path} is {file_kind(st.st_mode)}, not a regular "
                               "file; name a file edgevec can read to its end")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return open(fd, mode, closefd=True, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def check_target(path: str, overwrite: bool, what: str = "index") -> None:
    """That a new file (the `what`) may be written at `path`: nothing there, or (with
    `overwrite`) a regular file; never a directory, FIFO, socket or device (replacing one
    by a file is never what was meant). IndexExists otherwise, naming the fix."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError:
        return  # the write reports what is wrong with the path, naming it
    if not stat.S_ISREG(st.st_mode):
        raise IndexExists(f"{path} is {file_kind(st.st_mode)}; choose a file path for the "
                          f"{what}")
    if not overwrite:
        raise IndexExists(f"{path} already exists; pass overwrite=True (--overwrite) to "
                          "replace it, or open it with edgevec.open(path, writable=True) to "
                          "add to it")
