"""The user-facing `Index`: the lifecycle of one .edgevec file, its facts and rows, and
thin `search`, `add`, `delete`, `compact` and `calibrate` over edgevec.query (the planner),
edgevec.batch (the encoder), edgevec.embed.stored (the model the file carries) and
edgevec.storage (Snapshot reads one committed state, Writer commits)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from . import batch
from .embed import stored
from .errors import IdTypeMismatch, IndexStateError, InvalidInput, ReadOnlyError, UnknownId
from .progress import Progress
from .query import MODES
from .query import segments as query_segments
from .query import search as run_query
from .results import BatchResults, Record, Results
from .storage.reader import Snapshot
from .fileio import replacing
from .storage.writer import Pending, Writer, create_file
from .validate import (
    Id, as_list, check_choice, check_flag, check_k, check_lock_timeout, check_one_id,
    check_path, check_texts,
)


class Index:
    """A vector index stored in one .edgevec file: `Index.create` or `edgevec.open`. A
    read-only index memory-maps the file and never changes it; a writable one holds the
    file's writer lock until `close()`.

    Threads: one Index may be shared by any number of threads. Every read (`search`,
    `get`, `ids`, `contains`, `in`, `len`, `info`, `verify`) runs on the committed state
    it began with, to its end, whatever `refresh()`, a commit or `close()` does meanwhile
    in another thread (the old state's map is released after its last reader). The
    writes of a writable Index (`add`, `delete`, `calibrate`, `compact`) take turns, one
    commit at a time; a search that starts during a commit sees the state before or
    after it, never a part of it. Another process or handle writing the file is seen
    after `refresh()`. The scan kernels release the GIL: searches in several threads
    (with `threads=1` each, say) use several cores."""

    def __init__(self, path: str, snapshot: Snapshot, writer: Writer | None) -> None:
        self._path = path
        # a writer's snapshot is writer.snapshot, which every commit replaces
        self._snap: Snapshot | None = snapshot if writer is None else None
        self._writer = writer
        self._embedder = None
        self._lock = threading.RLock()  # refresh, close, writes: one at a time

    @classmethod
    def create(cls, path: str | os.PathLike, *, dim: int | None = None,
               model: Any = None, metric: str = "cosine", store_f16: bool = False,
               overwrite: bool = False, user_metadata: dict[str, Any] | None = None,
               lexical: Any = None, lexical_only: bool = False, bm25: Any = None,
               codecs: Any = None, pca: int | None = None, dims: int | None = None,
               lock_timeout: float = 0.0) -> "Index":
        """Create an empty index file (an existing one only with `overwrite`), open for
        writing. dim: 1..65536, for your own vectors; or model: a model name
        ("minilm-l6"), directory or Embedder, stored in the file, which then embeds texts
        on `add` and `search` with exactly that model. metric: "cosine" (rows are
        L2-normalised) or "dot". store_f16: keep float16 vectors too (exact rescoring and
        `get`; +2 bytes/dim/row). user_metadata: a JSON object kept in the header.
        lexical: keep BM25 postings of the texts for lexical and hybrid search (True, or
        an edgevec.lexical.Analyzer; default: True with a model, else False).
        lexical_only: no vectors and no model: texts are added and searched by BM25
        alone (a file that needs only the tokenizer to build and query). bm25: BM25's
        k1 and b, an edgevec.lexical.bm25.BM25 or {"k1": .., "b": ..} (default 1.2, 0.75),
        stored in the file and used by every search of it. codecs: how vectors are
        stored, a preset: "balanced" (the default: sign bits scanned, int8 codes
        rescoring; 432 B/row at 384-d), "exact" (+ float16 vectors, as store_f16=True;
        1,200 B/row) or "compact" (one 110 B/row transform code fitted on the first
        batch, which needs >= 1,000 rows; recall@10 ~0.92 of exact), or a list of code
        kinds (meta.codecs, formats/SPEC.md), e.g. ["binary", "f8e4m3"] for float8
        rescoring codes. pca: store vectors projected to this many dimensions by a PCA
        fitted on the first batch (>= 1,000 rows) and kept in the file; dims: keep the
        first this many dimensions (for models trained for it, "Matryoshka"). Either way
        `add` and `search` take vectors of `dim` (queries are projected, scores stay
        estimates of the full dot product or cosine) and `get` returns them restored."""
        embedder = None
        if model is not None:
            embedder = stored.resolve(model, dim)
            dim = embedder.dim
        meta = batch.new_meta(dim, metric, store_f16, user_metadata,
                              (model is not None or lexical_only) if lexical is None
                              else lexical, lexical_only, bm25, codecs, pca, dims)
        path = check_path(path)
        overwrite = check_flag(overwrite, "overwrite")
        check_lock_timeout(lock_timeout)
        # complete or not at all: written and given its model under a temporary name,
        # published under `path` only then (a failed model store used to leave an index
        # without its model there, and a retry said IndexExists)
        idx = None
        try:
            with replacing(path, overwrite=overwrite) as tmp:
                create_file(tmp, meta)
                idx = cls.open(tmp, writable=True)
                if embedder is not None:
                    idx._embedder = stored.store(idx._w(), embedder)
        except BaseException:
            if idx is not None:
                idx.close()
            raise
        idx._w().renamed(path)
        idx._path = path
        return idx

    @classmethod
    def open(cls, path: str | os.PathLike, *, writable: bool = False,
             lock_timeout: float = 0.0) -> "Index":
        """Open an index file: read-only by default (memory-mapped, O(1) in rows); with
        `writable=True` take the single-writer lock, waiting up to `lock_timeout` s."""
        path = check_path(path)
        lock_timeout = check_lock_timeout(lock_timeout)
        if check_flag(writable, "writable"):
            writer = Writer(path, lock_timeout=lock_timeout)
            return cls(path, writer.snapshot, writer)
        return cls(path, Snapshot(path), None)

    @property
    def _s(self) -> Snapshot:
        if self._writer is not None:
            return self._writer.snapshot
        if self._snap is None:
            raise IndexStateError(f"{self._path}: the index is closed; open it again with "
                                  "edgevec.open(path)")
        return self._snap

    @contextmanager
    def _reading(self) -> Iterator[Snapshot]:
        """The snapshot this index sees now, held open (Snapshot.acquire) until the block
        ends, even if another thread refreshes, commits or closes meanwhile."""
        seen = None
        while True:
            s = self._s
            if s.acquire():
                break
            if s is seen:  # closed and not replaced by a newer one: the index is closing
                raise IndexStateError(f"{self._path}: the index was closed; open it again "
                                      "with edgevec.open(path)")
            seen = s  # replaced meanwhile (refresh, commit): the next look finds the new one
        try:
            yield s
        finally:
            s.release()

    def _w(self) -> Writer:
        if self._writer is None:
            self._s  # noqa: B018 - a closed index says so before "read-only"
            raise ReadOnlyError(f"{self._path} is open read-only; open it with "
                                "edgevec.open(path, writable=True) to change it")
        return self._writer

    path = property(lambda self: self._path)
    dim = property(lambda self: self._s.dim)
    metric = property(lambda self: self._s.meta["metric"])
    writable = property(lambda self: self._writer is not None)
    generation = property(lambda self: self._s.generation,
                          doc="Commit generation this object sees (grows with every commit).")
    user_metadata = property(lambda self: dict(self._s.meta["user"]))

    def __len__(self) -> int:
        return self._s.live

    def contains(self, ids: Iterable[Id]) -> np.ndarray:
        """bool per id: whether a live row has it (`id in index` for many ids at once)."""
        with self._reading() as s:
            return s.find_many([check_one_id(i, s.meta["id_type"], self._path)
                                for i in as_list(ids, "ids")]) >= 0

    def __contains__(self, ident: object) -> bool:
        with self._reading() as s:
            try:
                return s.find(check_one_id(ident, s.meta["id_type"], self._path)) is not None
            except (IdTypeMismatch, InvalidInput):
                return False

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._snap is None and self._writer is None:
            return f"<edgevec.Index {self._path!r} closed>"
        mode = "writable" if self.writable else "read-only"
        return (f"<edgevec.Index {self._path!r} {mode} dim={self.dim} rows={len(self)} "
                f"generation={self.generation}>")

    def close(self) -> None:
        """Release the map and, for a writer, the lock. Arrays handed out stay valid;
        searches running in other threads finish first on the map they hold."""
        with self._lock:  # after a commit in progress in another thread
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._snap is not None:
                self._snap.close()
            self._snap = None

    def refresh(self) -> bool:
        """See the newest committed state (another process may have written since this
        index was opened). Returns True when the state changed. Searches running in
        other threads finish on the state they began with."""
        with self._lock:
            if self._writer is not None:
                return False
            old = self._s
            new = old.newer()
            if new is None:
                return False
            self._snap = new  # before closing the old one: see Index._reading
        old.close()
        return True

    @property
    def embedder(self):
        """The text model stored in the file (loaded on first use), or None."""
        if self._embedder is None:
            with self._lock, self._reading() as s:
                if self._embedder is None:  # not loaded by another thread meanwhile
                    self._embedder = stored.load(s)
        return self._embedder

    def _embed(self, texts: list[str], what: str) -> np.ndarray:
        if self.embedder is None:
            raise InvalidInput(f"{what} needs a text model, and {self._path} has none: pass "
                               "vectors, or create the index with model=\"minilm-l6\"")
        return self.embedder.encode(texts)

    def get(self, ident: Id) -> Record:
        """The stored row with id `ident`; raises `UnknownId` when there is none."""
        with self._reading() as s:
            row = s.find(check_one_id(ident, s.meta["id_type"], self._path))
            if row is None:
                raise UnknownId(f"id {ident!r:.60} is not in {self._path}")
            return Record(s.ids_of([row])[0], s.vectors([row])[0], s.texts_of([row])[0],
                          s.metadata_of([row])[0])

    def ids(self, *, filter: dict | None = None) -> list[Id]:  # noqa: A002
        """Ids of the live rows, in row order (reads every id: O(rows)); with `filter`
        (see `search`), of the live rows whose metadata matches it."""
        with self._reading() as s:
            if filter is None:
                return s.ids_of(s.live_rows())
            rows = [seg.row_start + np.flatnonzero(seg.allow) if seg.allow is not None else
                    seg.row_start + np.arange(info.rows) for seg, info in
                    zip(query_segments(s, filter), s.segments)]
            return s.ids_of(np.concatenate(rows) if rows else np.zeros(0, np.int64))

    def info(self) -> dict[str, Any]:
        return self._s.info()

    def verify(self) -> dict[str, Any]:
        """Check every checksum and structural rule; raises a FormatError on damage."""
        with self._reading() as s:
            return s.verify()

    def search(self, query: Any, k: int = 10, *, filter: dict | None = None,  # noqa: A002
               min_score: float | None = None, m: int | None = None, exact: bool = False,
               rescore_f16: bool = True, threads: int | None = None,
               embedder: Any = None, mode: str | None = None,
               alpha: float | None = None, text: Any = None) -> Results | BatchResults:
        """Search by text or vector: a str or a [dim] vector gives `Results`, a list of
        str or an [n, dim] array `BatchResults` (array-shaped, a row per query); k results
        per query (fewer only when fewer rows match).

        filter: metadata condition, e.g. {"lang": "en", "year": {"$gte": 2020}} (see
        edgevec.filters), a row mask inside both retrievers. min_score: drop hits scoring
        lower, in the mode's own score: cosine (or dot product) for dense, BM25 for
        lexical, for hybrid the fused score: sum of 1/(rrf_k + rank) over the two lists
        (at most 2/(rrf_k + 1), 1/3 with the default rrf_k 5), or with alpha in [0, 1].
        m: the funnel's depth: k*m candidates by Hamming distance rescored with int8, the
        best 4k then with float16 when stored (default: the depth measured on the index).
        exact: scan every row instead. threads: for the scans (default: all cores).
        embedder: checks that vectors you embedded come from the index's model.
        mode: "dense", "lexical" (BM25) or "hybrid" (both, fused by reciprocal rank; hits
        carry `ranks`); default: hybrid for text on an index with postings (lexical when
        it has no model), dense for vectors. alpha (hybrid): None fuses by reciprocal
        rank; a number in [0, 1] scores alpha * dense + (1 - alpha) * BM25, each list's
        scores min-max normalised over its top rrf depth (1: dense order, 0: BM25).
        text: with a vector you embedded yourself, the query's text (a list of them for a
        batch of vectors): searched by BM25 too, so the default mode becomes hybrid on an
        index with postings."""
        k = check_k(k)
        with self._reading() as s:
            stored.check(embedder, s)
            query, texts, single = query_inputs(s, query, mode, text, self._embed)
            return run_query(s, query, texts=texts, mode=mode, k=k, filter=filter,
                             min_score=min_score, m=m, exact=exact, rescore_f16=rescore_f16,
                             threads=threads, single=single, alpha=alpha)

    def add(self, vectors: Any = None, *, ids: Sequence[Id] | None = None,
            texts: Sequence[str] | None = None,
            metadata: Sequence[dict[str, Any] | None] | None = None,
            embedder: Any = None, replace: bool = False) -> list[Id]:
        """Add a batch of rows as one atomic commit; returns their ids.

        vectors: finite floats [n, dim] (or [dim]); "cosine" L2-normalises them (a zero row
        is an error). ids: n unique ints or strs, of the index's id type (default:
        consecutive ints); a live one raises DuplicateId and nothing is written, unless
        replace=True: then its row is deleted in the same commit (an upsert). texts: n
        strs stored with the rows (embedded when no vectors are given and the index has
        a model). metadata: n dicts or None; scalar fields become filterable columns.
        The first batch of 1,000+ rows measures the funnel's depth m (edgevec.calibration),
        and so does every batch that leaves the index 4x its size at the last measurement."""
        w = self._w()
        if vectors is None and w.snapshot.dim:
            if texts is None:
                raise InvalidInput("add() needs texts= (indexes with a model) or vectors=")
            texts = check_texts(texts, None)  # a generator is read once, here
            vectors = self._embed(texts, "add(texts=...) without vectors")
        else:
            stored.check(embedder, w.snapshot)
        with self._lock:  # from the state read to its commit: writes take turns
            w = self._w()
            encoded = batch.encode(w.snapshot, vectors, ids=ids, texts=texts,
                                   metadata=metadata, replace=replace)
            if encoded.rows:
                w.commit(encoded.pending, segment_rows=encoded.rows, meta=encoded.meta)
        return list(encoded.ids)

    def delete(self, ids: Iterable[Id]) -> int:
        """Delete rows by id as one atomic commit; returns how many were deleted.
        An id that is not live raises `UnknownId` and nothing is deleted."""
        with self._lock:
            w = self._w()
            pending, count = batch.tombstones(w.snapshot, ids)
            if count:
                w.commit(pending, segment_rows=None)
        return count

    def calibrate(self, *, target: float = 0.95, k: int = 10, sample_rows: int = 50_000,
                  queries: int = 200, seed: int = 0) -> dict[str, Any]:
        """Measure recall@k against exact search on a seeded sample of live rows, with
        `queries` queries made from them (edgevec.calibration), and store the smallest m
        that reaches `target`. Returns {"m", "reached", "recall_by_m", "sample_rows"}."""
        with self._lock:
            w = self._w()
            change, report = batch.measure_m(w.snapshot, target=target, k=k,
                                             queries=queries, sample_rows=sample_rows,
                                             seed=seed)
            w.commit([], segment_rows=None, meta=change)
        return report

    def compact(self, *, lexical: Any = None, progress: bool = False) -> dict[str, int]:
        """Rewrite the live rows into a fresh file that atomically replaces this one.
        Returns the file size before and after. `lexical`: True (or an Analyzer) also
        indexes the stored texts for lexical and hybrid search, False drops the postings;
        None keeps what the index has. BM25 and fusion settings stored in the file carry
        over. `progress`: draw the megabytes written, rate and ETA on stderr."""
        with self._lock:
            w = self._w()
            before = os.path.getsize(self._path)
            s = w.snapshot
            meta = dict(s.meta, rows=0, deleted=0)
            if lexical is not None:
                meta["lexical"] = batch.lexical_meta(lexical, keep=s.meta.get("lexical"))
            pending, total = batch.compaction(s, meta.get("lexical"))
            size = sum(int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize for p in pending)
            unit, scale = ("MB", 1e6) if size >= 10e6 else ("kB", 1e3)
            with Progress("compacted", size, unit, enabled=progress, scale=scale) as shown:
                w.replace_with(meta, [_counted(p, shown) for p in pending] if progress else
                               pending, total if total else None)
            after = os.path.getsize(self._path)
        return {"bytes_before": before, "bytes_after": after, "rows": total}


def query_inputs(s: Snapshot, query: Any, mode: str | None, text: Any, embed
                 ) -> tuple[Any, list[str] | None, bool | None]:
    """What `search` was given -> (vectors or None, texts or None, single): text queries
    are embedded with `embed(texts, what)` unless only BM25 will read them; `text=` goes
    with vectors you embedded yourself."""
    if mode is not None:
        check_choice(mode, MODES, "mode")
    texts, single = None, None
    if isinstance(query, str) or (isinstance(query, (list, tuple)) and query
                                  and all(isinstance(t, str) for t in query)):
        single = isinstance(query, str)
        texts = check_texts([query] if single else list(query), None, "query")
        query = None
        if mode != "lexical" and s.dim and (mode is not None or not s.meta.get("lexical")
                                            or s.meta.get("embedder")):
            vectors = embed(texts, "a text query")
            query = vectors[0] if single else vectors
        if text is not None:
            raise InvalidInput("text= goes with a vector query; this query is text already")
    elif text is not None:
        single = isinstance(text, str)
        texts = check_texts([text] if single else text, 1 if single else None, "text")
        shape = np.shape(query)
        if len(shape) != (1 if single else 2) or (not single and shape[0] != len(texts)):
            raise InvalidInput(f"text= needs one str per query vector: {len(texts)} "
                               f"text(s) for vector(s) of shape {shape}")
    return query, texts, single


def _counted(p: Pending, shown: Progress) -> Pending:
    """`p` whose chunks report their bytes to `shown` as they are written."""
    def chunks():
        for chunk in ([p.data] if isinstance(p.data, np.ndarray) else p.data):
            yield chunk
            shown.update(np.asarray(chunk).nbytes)
    return Pending(p.kind, chunks(), p.dtype, p.shape, p.extra)


def open(path: str | os.PathLike, *, writable: bool = False,  # noqa: A001 - public name
         lock_timeout: float = 0.0) -> Index:
    """Open an index file; see `Index.open`."""
    return Index.open(path, writable=writable, lock_timeout=lock_timeout)


def info(path: str | os.PathLike) -> dict[str, Any]:
    """Header and directory facts of an index file, without touching its rows."""
    with Snapshot(check_path(path)) as s:
        return s.info()


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Check every checksum and structural rule of an index file; raises FormatError."""
    with Snapshot(check_path(path)) as s:
        return s.verify()
