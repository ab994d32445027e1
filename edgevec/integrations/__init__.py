"""Adapters to RAG frameworks, each behind its extra: `edgevec.integrations.langchain`
(`edgevec[langchain]`) and `edgevec.integrations.llama_index` (`edgevec[llama-index]`).
Importing one without its extra raises `edgevec.MissingExtra`, which names the extra."""

from __future__ import annotations

import os

from .. import index as _index
from ..errors import InvalidInput


def open_existing(path: str, read_only: bool) -> "_index.Index | None":
    """The index at `path` opened for writing (or only reading), None when there is no
    file yet (a read-only store needs one)."""
    if not os.path.exists(path):
        if read_only:
            raise InvalidInput(f"read_only=True needs an index file, and there is no index "
                               f"file at {path}")
        return None
    return _index.Index.open(path, writable=not read_only)


def check_writable(read_only: bool, path: str) -> None:
    if read_only:
        raise InvalidInput(f"{path} was opened with read_only=True: open it without it to "
                           "add or delete")
