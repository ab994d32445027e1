"""A shard set served on a Ray cluster (`pip install 'edgevec[ray]'`):
`edgevec.open_many(paths, on_ray=True | ADDRESS, timeout=..., partial=...)`.

Each shard file is opened by one Ray actor, on whichever node Ray places it (the path must
be readable there: shared storage, or the file copied to every node). A search is
scatter-gather, in rounds, each answered by every shard in parallel:

1. dense: each shard's own funnel returns its best `depth` (scores, rows);
2. lexical: each shard returns its BM25 statistics (N, total length, df of the query
   terms), the driver sums them, and each shard scores with the sums, so BM25 scores are
   those of one index holding every row;
3. the driver merges and fuses exactly as for local files (edgevec.query.plan) and asks
   the shards that hold the hits for their ids, texts and metadata.

The results equal those of the same files opened locally (`open_many(paths)`). Each round
waits `timeout` seconds (None: as long as it takes) for the shards still in the query. A
shard that does not answer in time raises `ShardTimeout`, or, with `partial=True`, is
left out of the rest of that query and named in `results.missing` (`results.partial` is
then True). A shard that answered the search rounds and then does not return its hits'
records raises `ShardTimeout` either way: a hit is never dropped silently.

The driver embeds text queries itself, with the model the shards carry (fetched once from
the first shard), so a query's vector is the one a local search would use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import EdgevecError, InvalidInput, ShardTimeout, UnknownId
from ..results import BatchResults, Record, Results
from ..sets import check_compatible, set_info
from ..validate import check_k, check_number
from .ray import connect, failure, ray

__all__ = ["ServedShards"]

_FIX = "check that the shard's file is readable on the node serving it"


class _Shard:
    """One shard file, opened read-only in a Ray actor. An error opening it is kept and
    raised by the first call (so the driver gets the EdgevecError itself)."""

    def __init__(self, path: str) -> None:
        from ..index import Index
        from ..search import ENGINE
        ENGINE.long_lived()  # a server: NumPy's head start is not worth it here
        self.path, self.error = path, None
        try:
            self.index = Index.open(path)
        except EdgevecError as exc:
            self.error = exc

    def _s(self):
        if self.error is not None:
            raise self.error
        return self.index._s

    def describe(self) -> dict[str, Any]:
        s = self._s()
        return {"info": self.index.info(), "rows": s.rows, "meta": s.meta, "dim": s.dim}

    def model(self) -> dict[str, bytes] | None:
        from ..embed import stored
        model = stored.load(self._s())
        return None if model is None else model.files()

    def dense(self, q: np.ndarray, k: int, depth: int, m: int | None, exact: bool,
              rescore_f16: bool, threads: int | None, filter: dict | None  # noqa: A002
              ) -> tuple[np.ndarray, np.ndarray]:
        from ..query import _dense, segments
        s = self._s()
        return _dense(s, segments(s, filter), q, k, depth, m, exact, rescore_f16, threads,
                      0)

    def statistics(self, texts: list[str]) -> list:
        from ..query import lexical_statistics
        return lexical_statistics(self._s(), texts)

    def lexical(self, texts: list[str], depth: int, totals: list, threads: int | None,
                filter: dict | None) -> list:  # noqa: A002
        from ..query import _lexical, segments
        s = self._s()
        return _lexical(s.meta["lexical"], [
            (s.postings(g), seg.row_start, seg.allow)
            for g, seg in enumerate(segments(s, filter))], texts, depth, threads, totals)

    def records(self, rows: np.ndarray) -> tuple[list, list, list]:
        s = self._s()
        return s.ids_of(rows), s.texts_of(rows), s.metadata_of(rows)

    def get(self, ident: Any) -> Record | None:
        self._s()
        return self.index.get(ident) if ident in self.index else None

    def contains(self, ids: list) -> np.ndarray:
        self._s()
        if self.index.info()["id_type"] is None:
            return np.zeros(len(ids), dtype=bool)
        return self.index.contains(ids)

    def ids(self, filter: dict | None) -> list:  # noqa: A002
        self._s()
        return self.index.ids(filter=filter) if len(self.index) else []


class ServedShards:
    """The read side of `Index` over shard files each served by a Ray actor: `search`
    (every mode, batches, filters), `get`, `contains`, `ids`, `len`, `info`, `close`.
    See the module docstring for how a search runs and what `timeout`/`partial` do; both
    are attributes that may be changed between searches."""

    def __init__(self, paths: Iterable[str | os.PathLike], *, address: str | None = None,
                 timeout: float | None = None, partial: bool = False) -> None:
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise InvalidInput("open_many needs at least one index file")
        self.timeout, self.partial = timeout, partial
        self._started = connect(address, "open the files without on_ray")
        self._actors: list = []
        self._model = None
        try:
            # several shard processes may share a node's cores: OpenMP threads that spin
            # after each scan (Numba's default) take them from the others (measured: 4
            # shards on 2 cores 24-38 ms a query spinning, 8.6 ms passive)
            remote = ray.remote(scheduling_strategy="SPREAD", runtime_env={
                "env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}})(_Shard)
            self._actors = [remote.remote(p) for p in self.paths]
            described = self._call_all("describe", (), what="opening")
            self._rows = [d["rows"] for d in described]
            self._infos = [d["info"] for d in described]
            check_compatible(self.paths, self._infos)
            self.meta, self.dim = described[0]["meta"], described[0]["dim"]
            self._offsets = np.cumsum([0] + self._rows)[:-1].tolist()
        except BaseException:
            self.close()
            raise

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._timeout = None if value is None else check_number(value, "timeout", low=0,
                                                                high=1e6)

    @property
    def partial(self) -> bool:
        return self._partial

    @partial.setter
    def partial(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise InvalidInput(f"partial must be True or False, got {value!r}")
        self._partial = value

    # --- calls to the shards -------------------------------------------------------------

    def _wait(self, refs: dict[int, Any], what: str, partial: bool) -> dict[int, Any]:
        """{shard: its answer} for the calls in `refs`, waiting `timeout` for them all; a
        shard that has not answered is left out when `partial`, else ShardTimeout."""
        if not refs:
            return {}
        pending = list(refs.values())
        try:
            ready, _ = ray.wait(pending, num_returns=len(pending), timeout=self.timeout)
        except Exception as exc:
            raise failure(exc, "a shard's Ray actor", what, _FIX) from None
        ready_set = set(ready)
        out = {}
        for i, ref in refs.items():
            if ref not in ready_set:
                if partial:
                    continue
                raise ShardTimeout(
                    f"shard {self.paths[i]} did not answer within {self.timeout} s while "
                    f"{what}; pass a longer timeout, or partial=True to get results from the "
                    "shards that answer (flagged partial)")
            try:
                out[i] = ray.get(ref)
            except Exception as exc:
                raise failure(exc, f"the Ray actor serving {self.paths[i]}", what,
                              _FIX) from None
        return out

    def _call_all(self, method: str, args: tuple, what: str) -> list:
        """Every shard's answer to `method(*args)`, in shard order; no shard may be late."""
        answers = self._wait({i: getattr(a, method).remote(*args)
                              for i, a in enumerate(self._actors)}, what, partial=False)
        return [answers[i] for i in range(len(self._actors))]

    # --- the set -------------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(i["rows"] for i in self._infos)

    def info(self) -> dict[str, Any]:
        return dict(set_info(self._infos), served_on="ray")

    def close(self) -> None:
        for a in self._actors:
            try:
                ray.kill(a)
            except Exception:  # noqa: S110 - an actor already gone is closed
                pass
        self._actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()
            self._started = False

    def __enter__(self) -> "ServedShards":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<edgevec ServedShards: {len(self.paths)} files on Ray, {len(self)} rows>"

    # --- reading -------------------------------------------------------------------------

    def _embed(self, texts: list[str], what: str) -> np.ndarray:
        from ..embed import Embedder
        if self._model is None:
            files = self._call_all("model", (), what="fetching the text model")[0]
            if files is None:
                raise InvalidInput(f"{self.paths[0]} stores no text model: search it with "
                                   "vectors (or mode='lexical' for text)")
            self._model = Embedder.from_files(files, source=f"{self.paths[0]} (served)")
        return self._model.encode(texts)

    def search(self, query: Any, k: int = 10, *, filter: dict | None = None,  # noqa: A002
               min_score: float | None = None, m: int | None = None, exact: bool = False,
               rescore_f16: bool = True, threads: int | None = None,
               mode: str | None = None, alpha: float | None = None,
               text: Any = None) -> Results | BatchResults:
        """The options of `Index.search`; the rows of the results are global, as in a
        local shard set. `threads` applies inside each shard's actor."""
        from ..index import query_inputs
        from ..query import plan
        k = check_k(k)
        query, texts, single = query_inputs(self, query, mode, text, self._embed)
        return plan(_Query(self, filter), query, texts=texts, mode=mode, k=k,
                    min_score=min_score, m=m, exact=exact, rescore_f16=rescore_f16,
                    threads=threads, single=single, alpha=alpha)

    def get(self, ident: Any) -> Record:
        for record in self._call_all("get", (ident,), what="looking up an id"):
            if record is not None:
                return record
        raise UnknownId(f"id {ident!r:.60} is in none of the {len(self.paths)} shards")

    def __contains__(self, ident: object) -> bool:
        return bool(self.contains([ident])[0])

    def contains(self, ids: Sequence[Any]) -> np.ndarray:
        ids = list(ids)
        found = np.zeros(len(ids), dtype=bool)
        for f in self._call_all("contains", (ids,), what="looking up ids"):
            found |= f
        return found

    def ids(self, *, filter: dict | None = None) -> list:  # noqa: A002
        """Ids of the live rows (matching `filter`), shard by shard in row order."""
        return [i for part in self._call_all("ids", (filter,), what="listing ids")
                for i in part]


class _Query:
    """One search over a served set, in the shape `edgevec.query.plan` reads (see
    `edgevec.query.Local`): the shards still in it, and those that did not answer."""

    def __init__(self, shards: ServedShards, filter: dict | None) -> None:  # noqa: A002
        self.set, self.filter = shards, filter
        self.meta, self.dim, self.path = shards.meta, shards.dim, shards.paths[0]
        self.live_rows = sum(info["rows"] for info in shards._infos)  # caps k
        self.live = list(range(len(shards.paths)))
        self.late: list[int] = []

    @property
    def missing(self) -> tuple:
        return tuple(self.set.paths[i] for i in sorted(self.late))

    def _round(self, call, what: str) -> dict[int, Any]:
        """{shard: answer} of `call(actor)` on the shards still in the query; late ones
        leave it (partial) or raise."""
        answers = self.set._wait({i: call(self.set._actors[i]) for i in self.live}, what,
                                 self.set.partial)
        self.late += [i for i in self.live if i not in answers]
        self.live = [i for i in self.live if i in answers]
        return answers

    def _global(self, i: int, rows: np.ndarray) -> np.ndarray:
        off = self.set._offsets[i]
        return np.where(rows >= 0, rows + off, -1) if off else rows

    def dense(self, q: np.ndarray, k: int, depth: int, m: int | None, exact: bool,
              rescore_f16: bool, threads: int | None) -> tuple[np.ndarray, np.ndarray]:
        from ..query import _merge
        ref = ray.put(q)
        answers = self._round(lambda a: a.dense.remote(ref, k, depth, m, exact, rescore_f16,
                                                       threads, self.filter),
                              "searching its vectors")
        lists = [(answers[i][0], self._global(i, answers[i][1])) for i in sorted(answers)]
        if not lists:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        return _merge(lists, depth)

    def lexical(self, texts: list[str], depth: int, threads: int | None) -> list:
        from ..search import best_k
        stats = self._round(lambda a: a.statistics.remote(texts), "counting query terms")
        totals = []
        for j in range(len(texts)):
            n = sum(stats[i][j][0] for i in stats)
            length = sum(stats[i][j][1] for i in stats)
            df: dict[str, int] = {}
            for i in stats:
                for term, count in stats[i][j][2].items():
                    df[term] = df.get(term, 0) + count
            totals.append((n, length, df))
        answers = self._round(lambda a: a.lexical.remote(texts, depth, totals, threads,
                                                         self.filter), "scoring BM25")
        out = []
        for j in range(len(texts)):
            found = [(answers[i][j][0], self._global(i, answers[i][j][1]))
                     for i in sorted(answers)]
            if not found:
                out.append((np.zeros(0, np.float32), np.zeros(0, np.int64)))
                continue
            out.append(best_k(np.concatenate([s for s, _ in found]),
                              np.concatenate([r for _, r in found]), depth))
        return out

    @property
    def rows(self) -> "_Records":
        return _Records(self.set)


class _Records:
    """The hits' ids, texts and metadata, asked of the shards holding them in one round
    (`materialise` reads ids, texts and metadata of the same rows one after another)."""

    def __init__(self, shards: ServedShards) -> None:
        self.set = shards
        self._cache: tuple[bytes, tuple] | None = None

    def _read(self, rows: np.ndarray) -> tuple[list, list, list]:
        rows = np.asarray(rows, dtype=np.int64)
        key = rows.tobytes()
        if self._cache is None or self._cache[0] != key:
            offsets = np.asarray(self.set._offsets, dtype=np.int64)
            shard = np.searchsorted(offsets, rows, side="right") - 1
            at = {j: np.flatnonzero(shard == j) for j in np.unique(shard).tolist()}
            answers = self.set._wait(
                {j: self.set._actors[j].records.remote(rows[a] - offsets[j])
                 for j, a in at.items()}, "reading its hits", partial=False)
            out: tuple[list, list, list] = ([None] * len(rows), [None] * len(rows),
                                            [None] * len(rows))
            for j, a in at.items():
                for column, values in zip(out, answers[j]):
                    for i, v in zip(a.tolist(), values):
                        column[i] = v
            self._cache = (key, out)
        return self._cache[1]

    def ids_of(self, rows):
        return self._read(rows)[0]

    def texts_of(self, rows):
        return self._read(rows)[1]

    def metadata_of(self, rows):
        return self._read(rows)[2]
