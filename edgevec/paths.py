"""File paths given by users: the one check every entry point that takes a path makes.

Below every other module but errors: the embedder checks model directories with it too."""

from __future__ import annotations

import os
from typing import Any

from .errors import InvalidInput


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
