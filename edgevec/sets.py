"""What every shard set shares, served here or on Ray: the check that index files can be
searched as one, the set's info, and manifests.

A manifest (a text file named *.shards) lists a set's files, one path per line, relative
to the manifest's folder unless absolute; blank lines and lines starting with # are
skipped. Wherever a shard set is opened (open_many, merge, the CLI), a manifest stands for
the files it lists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import InvalidInput, from_os_error
from .paths import check_path, check_target, open_regular

# what must agree between shards, and how it is named in an error
_SAME = (("dim", lambda i: i["dim"]), ("metric", lambda i: i["metric"]),
         ("text model", lambda i: (i["embedder"] or {}).get("sha256")),
         ("lexical settings", lambda i: i["lexical"] and {
             key: i["lexical"][key] for key in ("fingerprint", "bm25", "rrf")}))

MANIFEST_SUFFIX = ".shards"


def shard_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """The index files named by `paths`, each manifest (*.shards) replaced by its list."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = check_path(p, "an index path")
        if not p.endswith(MANIFEST_SUFFIX):
            out.append(p)
            continue
        try:
            with open_regular(p, "the shard manifest", "r", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the shard manifest {p} "
                               f"({getattr(exc, 'strerror', None) or exc}); a manifest is "
                               "a UTF-8 text file naming one index file per line") from None
        listed = [os.path.join(os.path.dirname(os.path.abspath(p)), line.strip())
                  for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not listed:
            raise InvalidInput(f"the shard manifest {p} names no index files (one path per "
                               "line, relative to the manifest)")
        out += listed
    return out


def write_manifest(path: str | os.PathLike, shards: Iterable[str | os.PathLike]) -> str:
    """Write a manifest (*.shards) listing `shards`, relative to its folder when they are
    under it; returns its path."""
    from .fileio import write_file
    path = check_path(path, "the manifest path")
    if not path.endswith(MANIFEST_SUFFIX):
        raise InvalidInput(f"a shard manifest's name ends with {MANIFEST_SUFFIX}: {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    lines = []
    for shard in shards:
        full = os.path.abspath(os.fspath(shard))
        rel = os.path.relpath(full, folder)
        lines.append(full if rel.startswith("..") else rel)
    if not lines:
        raise InvalidInput("a shard manifest needs at least one index file")
    check_target(path, True, "shard manifest")  # never replaces a FIFO or a device
    try:
        write_file(path, ("\n".join(lines) + "\n").encode("utf-8"))
    except OSError as exc:
        raise from_os_error(exc, "writing a shard manifest", "choose a writable folder",
                            path) from None
    return path


def check_compatible(paths: Sequence[str], infos: Sequence[dict]) -> None:
    """InvalidInput unless the indexes (their `info()`) can be searched as one."""
    for what, value in _SAME:
        for path, info in zip(paths[1:], infos[1:]):
            if value(info) != value(infos[0]):
                raise InvalidInput(
                    f"{path} does not match {paths[0]}: its {what} differs "
                    f"({value(info)!r:.80} vs {value(infos[0])!r:.80}); a shard set "
                    "searches files built alike")
    types = {i["id_type"] for i in infos} - {None}
    if len(types) > 1:
        raise InvalidInput(f"the shards mix {' and '.join(sorted(types))} ids; a shard set "
                           "needs one id type")


def set_info(infos: Sequence[dict]) -> dict[str, Any]:
    """The info of a shard set: the first shard's settings, the totals, each shard's own."""
    first = infos[0]
    return {"shards": list(infos), "rows": sum(i["rows"] for i in infos),
            "stored_rows": sum(i["stored_rows"] for i in infos),
            "deleted": sum(i["deleted"] for i in infos),
            "file_bytes": sum(i["file_bytes"] for i in infos),
            **{key: first[key] for key in ("dim", "metric", "embedder", "lexical",
                                           "lexical_only")},
            "id_type": next((i["id_type"] for i in infos if i["id_type"]), None)}
