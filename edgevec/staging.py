"""A build's staged chunks: the embedded vectors of CHUNK_DOCS documents and their ids,
texts and metadata, kept on disk (mmap-ninja) until the index file is written, so that an
interrupted build resumes instead of embedding again.

A chunk is the folder `chunk-NNNNNNNN` (its number in the corpus's stream of chunks). It
is written under `.partial`, every file fsync'd and digested (sha256), then its `done`
marker (the document count and every file's digest, JSON) is written durably, the folder
renamed into place and the staging folder fsync'd. A resume trusts a chunk only when its
marker parses and every file it names has the recorded digest: a power loss that left a
marker beside zeroed, emptied or truncated data (the file system may write them in any
order) costs that chunk's embedding again, never a failed or wrong build.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from typing import Any

import numpy as np

from .fileio import fsync_path, sha256_file, write_file

PREFIX = "chunk-"
MARKER = "done"
FORMAT = 2  # of the marker; an older staging folder is discarded (job.json differs)


def chunk_path(staging: str, number: int) -> str:
    return os.path.join(staging, f"{PREFIX}{number:08d}")


def _fsync_tree(folder: str) -> dict[str, str]:
    """fsync every file and folder below `folder` (children first); their digests,
    by path relative to `folder`."""
    digests = {}
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in sorted(files):
            path = os.path.join(root, name)
            digests[os.path.relpath(path, folder)] = sha256_file(path)
            fsync_path(path)
        fsync_path(root)
    return digests


def _check_space(folder: str, needed: int) -> None:
    """mmap-ninja writes the vectors through a memory map, and a mapped page the file
    system cannot back kills the process with SIGBUS (found on a full tmpfs), instead of
    an ENOSPC: refuse to stage a chunk that does not fit. (Another process filling the
    disk between this check and the write can still cause it.)"""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise OSError(errno.ENOSPC, f"staging a chunk needs {needed:,} bytes and "
                      f"{free:,} are free", folder)


def stage_chunk(folder: str, vectors: np.ndarray, docs: list) -> None:
    """Write one chunk durably (see the module docstring)."""
    from mmap_ninja import numpy as ninja_np
    from mmap_ninja.string import StringsMmap
    tmp = folder + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # a damaged copy, embedded again
    strings = sum(len(d.text) * 4 + len(str(d.id)) * 4 + 256 for d in docs)  # UTF-8 bound
    _check_space(os.path.dirname(folder), vectors.nbytes + strings + (1 << 16))
    os.makedirs(tmp)
    ninja_np.from_ndarray(os.path.join(tmp, "vectors"), vectors)
    StringsMmap.from_strings(os.path.join(tmp, "ids"), [d.id for d in docs])
    StringsMmap.from_strings(os.path.join(tmp, "texts"), [d.text for d in docs])
    StringsMmap.from_strings(os.path.join(tmp, "meta"), [
        json.dumps(d.metadata, ensure_ascii=False, sort_keys=True) for d in docs])
    digests = _fsync_tree(tmp)  # the data reaches the disk before the marker that vouches
    write_file(os.path.join(tmp, MARKER), json.dumps(
        {"format": FORMAT, "docs": len(docs), "sha256": digests}, sort_keys=True).encode())
    os.replace(tmp, folder)
    fsync_path(os.path.dirname(folder))


def read_chunk(folder: str) -> tuple[np.ndarray, list, list, list]:
    """(vectors, ids, texts, metadata) of a staged chunk."""
    from mmap_ninja import numpy as ninja_np
    from mmap_ninja.string import StringsMmap
    vectors = np.asarray(ninja_np.open_existing(os.path.join(folder, "vectors")))
    ids = list(StringsMmap(os.path.join(folder, "ids")))
    texts = list(StringsMmap(os.path.join(folder, "texts")))
    meta = [json.loads(m) for m in StringsMmap(os.path.join(folder, "meta"))]
    return vectors, ids, texts, meta


def check_chunk(folder: str) -> tuple[int | None, str]:
    """(the documents a staged chunk holds, "") when its marker and every digest check
    out, else (None, what is wrong)."""
    try:
        with open(os.path.join(folder, MARKER), "rb") as f:
            marker: Any = json.loads(f.read())
    except FileNotFoundError:
        return None, "it has no done marker"
    except (OSError, ValueError) as exc:
        return None, f"its done marker cannot be read ({str(exc)[:60]})"
    if not isinstance(marker, dict):
        marker = {}
    docs, digests = marker.get("docs"), marker.get("sha256")
    if marker.get("format") != FORMAT or isinstance(docs, bool) or not isinstance(docs, int) \
            or docs < 1 or not isinstance(digests, dict) or not digests:
        return None, "its done marker is not one this version writes"
    for name, digest in sorted(digests.items()):
        path = os.path.join(folder, name)
        if os.path.isabs(name) or ".." in name.split(os.sep):
            return None, f"its done marker names {name!r:.60} outside the chunk"
        try:
            actual = sha256_file(path)
        except OSError as exc:
            return None, f"{name} cannot be read ({exc.strerror or exc})"
        if actual != digest:
            return None, f"{name} fails its checksum (sha256 {actual[:12]}..., recorded " \
                         f"{str(digest)[:12]}...)"
    return docs, ""


def staged_chunks(staging: str) -> dict[int, int]:
    """{chunk number: documents} of the chunks a resume can trust. Partial chunks and
    chunks that fail their check are removed (the build embeds them again), each
    damaged one reported through the "edgevec" logger."""
    out = {}
    for name in sorted(os.listdir(staging)):
        path = os.path.join(staging, name)
        if not name.startswith(PREFIX):
            continue
        number = name[len(PREFIX):]
        if name.endswith(".partial") or not number.isdigit():
            shutil.rmtree(path, ignore_errors=True)
            continue
        docs, why = check_chunk(path)
        if docs is None:
            logging.getLogger("edgevec").warning(
                "staged chunk %s cannot be trusted (%s); embedding its documents again",
                path, why)
            shutil.rmtree(path, ignore_errors=True)
            continue
        out[int(number)] = docs
    return out
