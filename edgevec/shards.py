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

Wherever a set is opened (open_many, merge, the CLI), a manifest (*.shards, see
edgevec.sets) stands for the files it lists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np

from .errors import InvalidInput, UnknownId
from .fileio import replacing
from .index import Index, query_inputs
from .query import search as run_query
from .results import BatchResults, Record, Results
from .sets import check_compatible, set_info, shard_paths
from .validate import check_flag, check_k, check_path


def open_many(paths: str | os.PathLike | Iterable[str | os.PathLike], *,
              on_ray: bool | str = False, timeout: float | None = None,
              partial: bool = False) -> Any:
    """Open index files (or manifests listing them) as one read-only index: a `ShardSet`
    here, or with `on_ray` (True: the Ray instance this process is connected to, or a
    local one; a string: a cluster's address) a set whose shards are each served by a
    Ray actor on the cluster (edgevec[ray]; see edgevec.integrations.ray_shards): a
    search scatters to them and gathers, waiting `timeout` seconds per round for each shard; a shard that does not
    answer in time is an error (`ShardTimeout`), or with `partial=True` leaves it out and
    flags the results (`results.partial`, `results.missing`)."""
    if on_ray is not False and on_ray is not None:
        from .integrations.ray_shards import ServedShards
        return ServedShards(shard_paths(paths), address=None if on_ray is True else on_ray,
                            timeout=timeout, partial=partial)
    if timeout is not None or partial:
        raise InvalidInput("timeout and partial apply to a set served on Ray (on_ray=...); "
                           "a local shard set reads its files directly")
    return ShardSet(shard_paths(paths))


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
            check_compatible(self.paths, [s.info() for s in self._shards])
        except BaseException:
            self.close()
            raise

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
        return set_info([s.info() for s in self._shards])

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
        with ExitStack() as held:  # each shard's state held to the end (Index._reading)
            snaps = [held.enter_context(s._reading()) for s in self._shards]
            query, texts, single = query_inputs(snaps[0], query, mode, text, first._embed)
            return run_query(snaps, query, texts=texts, mode=mode, k=k, filter=filter,
                             min_score=min_score, m=m, exact=exact, rescore_f16=rescore_f16,
                             threads=threads, single=single, alpha=alpha)

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
    again with the output's calibration (within half an int8 step of the originals);
    compact files (transform codes) make a compact file whose code is fitted again on
    the decoded rows of the first batch (so at least 1,000 rows).
    Written under a temporary name and published as `output` when complete
    (fileio.replacing): a failed merge leaves any old file untouched. Returns the rows
    and bytes."""
    from .embed import stored
    from .lexical import Analyzer
    output = check_path(output, "output")
    overwrite = check_flag(overwrite, "overwrite")
    if os.path.exists(output) and not overwrite:
        raise InvalidInput(f"{output} already exists; pass overwrite=True (--overwrite) to "
                           "replace it")
    with ShardSet(shard_paths(paths)) as many, replacing(output, overwrite=overwrite) as tmp:
        first = many._shards[0]._s
        lexical = first.meta.get("lexical")
        f16 = all(s._s.has_f16 for s in many._shards)
        model = stored.load(first)
        options: dict[str, Any] = {"user_metadata": first.meta.get("user")}
        if all("transform" in s._s.meta["codecs"] for s in many._shards):
            options["codecs"] = "compact"  # a new code, fitted on the first rows' decoded
            # vectors (each shard's code was fitted on its own rows)
        elif all(s._s.float8() for s in many._shards):
            options["codecs"] = list(first.meta["codecs"])
        kinds = {json.dumps(s._s.meta.get("projection"), sort_keys=True) for s in many._shards}
        if len(kinds) == 1 and first.meta.get("projection"):  # the same kind and dims: a
            # prefix cut is kept as it is, a pca fitted again on the first rows (restored)
            p = first.meta["projection"]
            options["pca" if p["kind"] == "pca" else "dims"] = p["dims"]
        if lexical:
            options.update(lexical=Analyzer.from_settings(lexical["analyzer"]),
                           bm25=lexical["bm25"])
        if not first.dim:
            options.update(lexical_only=True)
        elif model is not None:
            options.update(model=model, store_f16=f16)
        else:
            options.update(dim=first.dim, metric=first.meta["metric"], store_f16=f16)
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
    return {"rows": total, "bytes": os.path.getsize(output), "path": output}
