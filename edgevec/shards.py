"""Several index files searched as one (a shard set): `edgevec.open_many(paths)`.

The shards are opened read-only and must be compatible: the same dimension, metric and id
type, the same text model (or none) and the same lexical settings (analyzer, BM25, fusion).
A search reads them as one index holding their rows in the order given: BM25 statistics
(N, df, average length) are summed over every shard, as over the segments of one file,
and the merged top k is ordered by score, then by that global row order. Each shard's
dense candidates come from its own funnel (its int8 calibration and depth m), so dense
scores are those each file gives on its own.

Ids should be unique across the set (a build that writes shards gives them distinct ids);
`get` returns the first shard's row when they are not.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInput, UnknownId
from .index import Index, query_inputs
from .query import search as run_query
from .results import BatchResults, Record, Results
from .validate import check_k

# what must agree between shards, and how it is named in an error
_SAME = (("dim", lambda i: i["dim"]), ("metric", lambda i: i["metric"]),
         ("text model", lambda i: (i["embedder"] or {}).get("sha256")),
         ("lexical settings", lambda i: i["lexical"] and {
             key: i["lexical"][key] for key in ("fingerprint", "bm25", "rrf")}))


def open_many(paths: Iterable[str | os.PathLike]) -> "ShardSet":
    """Open index files as one read-only index; see `ShardSet`."""
    return ShardSet(paths)


class ShardSet:
    """The read side of `Index` over several files: `search` (every mode, batches,
    filters), `get`, `contains`, `ids`, `len`, `info`."""

    def __init__(self, paths: Iterable[str | os.PathLike]) -> None:
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise InvalidInput("open_many needs at least one index file")
        self._shards: list[Index] = []
        try:
            for p in paths:
                self._shards.append(Index.open(p))
            self._check()
        except BaseException:
            self.close()
            raise

    def _check(self) -> None:
        infos = [s.info() for s in self._shards]
        for what, value in _SAME:
            for shard, info in zip(self._shards[1:], infos[1:]):
                if value(info) != value(infos[0]):
                    raise InvalidInput(
                        f"{shard._path} does not match {self._shards[0]._path}: its {what} "
                        f"differs ({value(info)!r:.80} vs {value(infos[0])!r:.80}); a shard "
                        "set searches files built alike")
        types = {i["id_type"] for i in infos} - {None}
        if len(types) > 1:
            raise InvalidInput(f"the shards mix {' and '.join(sorted(types))} ids; a shard "
                               "set needs one id type")

    # --- the set -------------------------------------------------------------------------

    @property
    def paths(self) -> list[str]:
        return [s._path for s in self._shards]

    @property
    def dim(self) -> int:
        return self._shards[0].dim

    def __len__(self) -> int:
        return sum(len(s) for s in self._shards)

    def close(self) -> None:
        for s in self._shards:
            s.close()

    def __enter__(self) -> "ShardSet":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<edgevec.ShardSet of {len(self._shards)} files, {len(self)} rows>"

    def info(self) -> dict[str, Any]:
        """The first shard's settings, the set's totals and each shard's own info."""
        shards = [s.info() for s in self._shards]
        first = shards[0]
        return {"shards": shards, "rows": sum(i["rows"] for i in shards),
                "stored_rows": sum(i["stored_rows"] for i in shards),
                "deleted": sum(i["deleted"] for i in shards),
                "file_bytes": sum(i["file_bytes"] for i in shards),
                **{key: first[key] for key in ("dim", "metric", "embedder", "lexical",
                                               "lexical_only")},
                "id_type": next((i["id_type"] for i in shards if i["id_type"]), None)}

    # --- reading -------------------------------------------------------------------------

    def search(self, query: Any, k: int = 10, *, filter: dict | None = None,  # noqa: A002
               min_score: float | None = None, m: int | None = None, exact: bool = False,
               rescore_f16: bool = True, threads: int | None = None,
               mode: str | None = None, alpha: float | None = None,
               text: Any = None) -> Results | BatchResults:
        """Search every shard as one index: the options of `Index.search`. Result rows
        are global: a shard's rows follow those of the shards before it."""
        k = check_k(k)
        first = self._shards[0]
        query, texts, single = query_inputs(first._s, query, mode, text, first._embed)
        return run_query([s._s for s in self._shards], query, texts=texts, mode=mode, k=k,
                         filter=filter, min_score=min_score, m=m, exact=exact,
                         rescore_f16=rescore_f16, threads=threads, single=single,
                         alpha=alpha)

    def get(self, ident: Any) -> Record:
        for s in self._shards:
            if ident in s:
                return s.get(ident)
        raise UnknownId(f"id {ident!r:.60} is in none of the {len(self._shards)} shards")

    def __contains__(self, ident: object) -> bool:
        return any(ident in s for s in self._shards)

    def contains(self, ids: Sequence[Any]) -> np.ndarray:
        ids = list(ids)
        found = np.zeros(len(ids), dtype=bool)
        for s in self._shards:
            if s.info()["id_type"] is not None:
                found |= s.contains(ids)
        return found

    def ids(self, *, filter: dict | None = None) -> list:  # noqa: A002
        """Ids of the live rows (matching `filter`), shard by shard in row order."""
        return [i for s in self._shards if len(s) for i in s.ids(filter=filter)]


MERGE_ROWS = 65_536


def merge(paths: Iterable[str | os.PathLike], output: str | os.PathLike, *,
          overwrite: bool = False) -> dict[str, Any]:
    """Write the live rows of compatible index files (a shard set) into one new file, in
    the set's order: ids, texts, metadata, the text model and the lexical settings carried
    over, BM25 postings made again. Vectors are the stored float16 ones when every shard
    keeps them (then kept in the output too), else the int8 codes decoded and quantised
    again with the output's calibration (within half an int8 step of the originals).
    Written to OUTPUT.writing and renamed when complete. Returns the rows and bytes."""
    from .embed import stored
    from .lexical import Analyzer
    output = os.fspath(output)
    if os.path.exists(output) and not overwrite:
        raise InvalidInput(f"{output} already exists; pass overwrite=True (--overwrite) to "
                           "replace it")
    tmp = output + ".writing"
    with ShardSet(paths) as many:
        first = many._shards[0]._s
        lexical = first.meta.get("lexical")
        f16 = all(s._s.has_f16 for s in many._shards)
        model = stored.load(first)
        options: dict[str, Any] = {"overwrite": True, "user_metadata": first.meta.get("user")}
        if lexical:
            options.update(lexical=Analyzer.from_settings(lexical["analyzer"]),
                           bm25=lexical["bm25"])
        if not first.dim:
            options.update(lexical_only=True)
        elif model is not None:
            options.update(model=model, store_f16=f16)
        else:
            options.update(dim=first.dim, metric=first.meta["metric"], store_f16=f16)
        try:
            with Index.create(tmp, **options) as out:
                if lexical:  # the fusion settings too, as stored
                    out._w().commit([], segment_rows=None, meta={"lexical": dict(
                        out._s.meta["lexical"], rrf=lexical["rrf"])})
                for shard in many._shards:
                    s = shard._s
                    live = s.live_rows()
                    for a in range(0, len(live), MERGE_ROWS):
                        rows = live[a:a + MERGE_ROWS]
                        texts = s.texts_of(rows)
                        out.add(s.vectors(rows) if s.dim else None, ids=s.ids_of(rows),
                                texts=texts if any(t is not None for t in texts) else None,
                                metadata=s.metadata_of(rows))
                total = len(out)
            os.replace(tmp, output)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return {"rows": total, "bytes": os.path.getsize(output), "path": output}
