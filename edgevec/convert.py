"""Magnitude-style vector files: import word2vec / GloVe / fastText text vectors, or a .npy
matrix with an id list, into a vectors-only .edgevec. The result is memory-mapped on open,
so `idx.get("king")` and `idx.search(idx.get("king").vector)` work on vocabularies larger
than RAM. Read in batches: memory stays bounded whatever the vocabulary size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import numpy as np

from .errors import InvalidInput, os_errors_as_edgevec_errors
from .fileio import replacing
from .paths import check_path, open_regular
from .validate import check_flag, check_k

BATCH = 50_000


def _text_vectors(path: str, limit: int | None) -> Iterator[tuple[list[str], np.ndarray]]:
    with open_regular(path, "the vector file", "r", encoding="utf-8", errors="strict") as f:
        first = f.readline()
        head = first.split()
        dim = None
        lines = []
        if len(head) == 2 and all(p.isdigit() for p in head):
            dim = int(head[1])  # word2vec / fastText header: count and dimension
        else:
            lines.append(first)
        count = 0
        words: list[str] = []
        rows: list[np.ndarray] = []

        def parse(line: str, number: int):
            nonlocal dim
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if dim is None:
                dim = len(parts) - 1
            if len(parts) != dim + 1:
                raise InvalidInput(f"{path}:{number}: {len(parts) - 1} values, expected {dim}")
            try:
                return parts[0], np.array(parts[1:], dtype=np.float32)
            except ValueError:
                raise InvalidInput(f"{path}:{number}: a value is not a number") from None

        number = 1 if lines else 2
        for line in _chain(lines, f):
            if not line.strip():
                number += 1
                continue
            w, v = parse(line, number)
            number += 1
            words.append(w)
            rows.append(v)
            count += 1
            if len(words) == BATCH:
                yield words, np.stack(rows)
                words, rows = [], []
            if limit and count >= limit:
                break
        if words:
            yield words, np.stack(rows)


def _chain(first, rest):
    yield from first
    yield from rest


def _npy_vectors(path: str, ids_path: str | None, limit: int | None):
    if ids_path is None:
        raise InvalidInput(f"{path}: a .npy matrix needs --ids, a text file with one id per line")
    with open_regular(path, "the .npy matrix"):  # a FIFO would hang np.load
        pass
    x = np.load(path, mmap_mode="r")
    if x.ndim != 2:
        raise InvalidInput(f"{path}: expected a 2-D matrix, got shape {list(x.shape)}")
    with open_regular(ids_path, "the id list", "r", encoding="utf-8") as f:
        ids = [line.rstrip("\n") for line in f]
    if len(ids) != len(x):
        raise InvalidInput(f"{ids_path} has {len(ids)} ids for {len(x)} vectors")
    n = min(len(x), limit) if limit else len(x)
    for a in range(0, n, BATCH):
        yield ids[a:min(n, a + BATCH)], np.asarray(x[a:min(n, a + BATCH)], dtype=np.float32)


@os_errors_as_edgevec_errors("converting vectors", "check that the input is readable and the "
                             "output's folder writable with free space")
def convert(vectors: str, output: str, *, ids_path: str | None = None,
            overwrite: bool = False, limit: int | None = None) -> str:
    """Write `output` from a text vector file or a .npy; returns a one-line report. The
    file is written under a temporary name and published as `output` only once every
    vector is in (fileio.replacing): a bad row or a full disk leaves any old file as it
    was."""
    from .index import Index
    vectors, output = check_path(vectors, "vectors"), check_path(output, "output")
    overwrite = check_flag(overwrite, "overwrite")
    if limit is not None:
        limit = check_k(limit, "limit")
    if not os.path.exists(vectors):
        raise InvalidInput(f"{vectors}: no such file")
    added = read = 0
    with replacing(output, overwrite=overwrite) as tmp:
        batches = (_npy_vectors(vectors, ids_path, limit) if vectors.endswith(".npy")
                   else _text_vectors(vectors, limit))
        idx = None
        try:
            for words, x in batches:
                if idx is None:
                    idx = Index.create(tmp, dim=x.shape[1], store_f16=True,
                                       user_metadata={"source": os.path.basename(vectors)})
                added += _add_new(idx, words, x)
                read += len(words)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{vectors}: not UTF-8 text (byte {exc.start}); binary "
                               "word2vec files are not supported, save them as text") from None
        finally:
            if idx is not None:
                idx.close()
        if idx is None:
            raise InvalidInput(f"{vectors}: no vectors found")
    skipped = read - added
    if skipped:
        logging.getLogger("edgevec").warning("skipped %d duplicate or all-zero vectors",
                                             skipped)
    return f"converted {added} vectors into {output} ({os.path.getsize(output) / 1e6:.1f} MB)"


def _add_new(idx, words: list[str], x: np.ndarray) -> int:
    """Add the rows of a batch that are new and non-zero (cosine needs a norm > 0): a word
    repeated in the batch or added by an earlier one is skipped. Returns how many."""
    keep, seen = [], set()
    for i, w in enumerate(words):
        if w not in seen:
            seen.add(w)
            keep.append(i)
    if len(idx):
        present = idx.contains([words[i] for i in keep])
        keep = [i for i, p in zip(keep, present.tolist()) if not p]
    zero = ~np.abs(x[keep]).any(axis=1) if keep else np.zeros(0, bool)
    keep = [i for i, z in zip(keep, zero.tolist()) if not z]
    if keep:
        idx.add(x[keep], ids=[words[i] for i in keep])
    return len(keep)
