"""The user-facing `Index`: create or open a .edgevec file, add, delete, get, search,
compact, calibrate.

User input is checked (with validate.py and the checks of search.py) before anything is
encoded, written or handed to a kernel.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import codecs
from .errors import (
    DimensionMismatch,
    DuplicateId,
    IdTypeMismatch,
    IndexStateError,
    InvalidInput,
    ReadOnlyError,
    UnknownId,
)
from . import search as S
from .results import BatchResults, Results
from .storage.columns import encode_columns
from .storage.directory import MAX_DIM
from .storage.layout import METRICS, VERSION_MAJOR, VERSION_MINOR
from .storage.reader import Snapshot
from .storage.segments import batch_pending, compact_pending
from .storage.strings import id_keys
from .storage.writer import Pending, Writer, create_file

from .validate import (
    Id,
    as_list,
    check_flag,
    check_metadata,
    check_path,
    check_texts,
    json_dumps,
    normalise,
    normalise_id,
)
CALIBRATE_MIN_ROWS = 1000
# From this many queries on, a batch's Hamming stage runs through the batch kernel (each
# code word loaded once for all queries); fewer go one by one (and may use NumPy scans in
# a new process, see search.ScanEngine).
BATCH_MIN_QUERIES = 4


@dataclass(frozen=True)
class Record:
    """One stored row: its id, its vector (float32, decoded from float16 when stored,
    else from int8), its text and metadata (None when the row has none)."""

    id: Id
    vector: np.ndarray
    text: str | None
    metadata: dict[str, Any] | None


class Index:
    """A vector index stored in one .edgevec file.

    Create one with `Index.create`, open one with `Index.open` / `edgevec.open`. A
    read-only index memory-maps the file and never changes it; a writable one holds the
    file's writer lock until `close()`.
    """

    def __init__(self, path: str, snapshot: Snapshot, writer: Writer | None) -> None:
        self._path = path
        self._snap: Snapshot | None = snapshot
        self._writer = writer
        self._embedder = None

    # --- constructors ----------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, *, dim: int | None = None,
               model: str | None = None, metric: str = "cosine", store_f16: bool = False,
               overwrite: bool = False, user_metadata: dict[str, Any] | None = None,
               lock_timeout: float = 0.0) -> "Index":
        """Create an empty index file and open it for writing.

        Parameters
        ----------
        path : the file to create; an existing file is an error unless `overwrite`.
        dim : vector dimension, 1..65536 (bring-your-own vectors).
        model : a text model (name such as "minilm-l6", or a model directory). Its files
            are stored inside the index, which then embeds texts on `add` and text queries
            on `search` with exactly that model. `dim` follows from the model.
        metric : "cosine" (vectors are L2-normalised on add) or "dot".
        store_f16 : also store float16 vectors (exact rescoring and `get`; +2 bytes/dim/row).
        user_metadata : a JSON object stored in the file header (e.g. corpus name).
        """
        embedder = None
        if model is not None:
            from .embed import Embedder
            if not isinstance(model, (str, os.PathLike, Embedder)):
                raise InvalidInput(f"model must be a model name, a model directory or an "
                                   f"Embedder, got {type(model).__name__} {model!r:.60}")
            embedder = model if isinstance(model, Embedder) else Embedder.load(model)
            if dim is not None and int(dim) != embedder.dim:
                raise DimensionMismatch(f"dim={dim} but model {embedder.name} gives "
                                        f"{embedder.dim}-dimensional vectors; omit dim")
            dim = embedder.dim
        if dim is None:
            raise InvalidInput("Index.create needs dim= (your own vectors) or model= (texts)")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) \
                or not 1 <= int(dim) <= MAX_DIM:
            raise InvalidInput(f"dim must be an int in [1, {MAX_DIM}], got {dim!r}")
        store_f16 = check_flag(store_f16, "store_f16")
        overwrite = check_flag(overwrite, "overwrite")
        if not isinstance(metric, str) or metric not in METRICS:
            raise InvalidInput(f"metric must be one of {METRICS}, got {metric!r}")
        user = {} if user_metadata is None else user_metadata
        if not isinstance(user, dict):
            raise InvalidInput(f"user_metadata must be a dict, got {type(user).__name__}")
        json_dumps(user, "user_metadata")
        meta = {"dim": int(dim), "metric": metric, "id_type": None,
                "codecs": ["binary", "int8"] + (["f16"] if store_f16 else []),
                "rows": 0, "deleted": 0, "next_auto_id": 0, "fields": {},
                "rescore_m": None, "embedder": None, "user": user}
        path = check_path(path)
        create_file(path, meta, overwrite=overwrite)
        idx = cls.open(path, writable=True, lock_timeout=lock_timeout)
        if embedder is not None:
            try:
                idx._store_model(embedder)
            except BaseException:
                idx.close()
                raise
        return idx

    def _store_model(self, embedder) -> None:
        """Put the model's files into the index (one commit) so the file answers text
        queries on its own."""
        blobs = embedder.files()
        pending = [Pending("blob", iter([np.frombuffer(data, np.uint8)]), "|u1", (len(data),),
                           {"name": f"model/{name}"}) for name, data in sorted(blobs.items())]
        self._w().commit(pending, segment_rows=None, meta={"embedder": embedder.identity})
        self._embedder = embedder

    @classmethod
    def open(cls, path: str | os.PathLike, *, writable: bool = False,
             lock_timeout: float = 0.0) -> "Index":
        """Open an index file: read-only by default (memory-mapped, O(1) in rows); with
        `writable=True` take the single-writer lock, waiting up to `lock_timeout` s."""
        path = check_path(path)
        if check_flag(writable, "writable"):
            writer = Writer(path, lock_timeout=lock_timeout)
            return cls(path, writer.snapshot, writer)
        return cls(path, Snapshot(path), None)

    # --- state -----------------------------------------------------------------------

    @property
    def _s(self) -> Snapshot:
        if self._writer is not None:
            return self._writer.snapshot
        if self._snap is None:
            raise IndexStateError(f"{self._path}: the index is closed; open it again with "
                                  "edgevec.open(path)")
        return self._snap

    def _w(self) -> Writer:
        if self._writer is None:
            if self._snap is None:
                raise IndexStateError(f"{self._path}: the index is closed")
            raise ReadOnlyError(f"{self._path} is open read-only; open it with "
                                "edgevec.open(path, writable=True) to change it")
        return self._writer

    @property
    def path(self) -> str:
        return self._path

    @property
    def dim(self) -> int:
        return self._s.dim

    @property
    def metric(self) -> str:
        return self._s.meta["metric"]

    @property
    def writable(self) -> bool:
        return self._writer is not None

    @property
    def generation(self) -> int:
        """Commit generation of the state this object sees (grows with every commit)."""
        return self._s.generation

    @property
    def user_metadata(self) -> dict[str, Any]:
        return dict(self._s.meta["user"])

    def __len__(self) -> int:
        return self._s.live

    def __contains__(self, ident: object) -> bool:
        try:
            return self._s.find(self._check_one_id(ident)) is not None
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
        """Release the map and, for a writer, the lock. Arrays handed out stay valid."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._snap is not None:
            self._snap.close()
        self._snap = None

    def refresh(self) -> bool:
        """See the newest committed state (another process may have written since this
        index was opened). Returns True when the state changed."""
        if self._writer is not None:
            return False
        old = self._s
        new = Snapshot(self._path)
        if new.inode == old.inode and new.generation == old.generation:
            new.close()
            return False
        self._snap = new
        old.close()
        return True

    @property
    def embedder(self):
        """The text model stored in the file (loaded on first use), or None."""
        if self._embedder is None and self._s.meta.get("embedder"):
            from .embed import Embedder
            s = self._s
            files = {name[len("model/"):]: (lambda n=name: s.blob(n)) if name.endswith(
                ".onnx") else s.blob(name) for name in s.directory.blobs
                if name.startswith("model/")}
            # the 24 MB model is read only if this machine has no optimised copy of it
            self._embedder = Embedder.from_files(
                files, source=f"{self._path} (stored model)",
                model_sha256=s.meta["embedder"].get("sha256"))
            if not self._embedder.same_model(s.meta["embedder"]):
                from .errors import ModelMismatch
                raise ModelMismatch(f"{self._path}: the stored model does not match the "
                                    "identity recorded in the header; the file is damaged")
        return self._embedder

    def _embed(self, texts, what: str) -> np.ndarray:
        emb = self.embedder
        if emb is None:
            raise InvalidInput(f"{what} needs a text model, and {self._path} has none: pass "
                               "vectors, or create the index with model=\"minilm-l6\"")
        return emb.encode(texts)

    # --- reading -----------------------------------------------------------------------

    def get(self, ident: Id) -> Record:
        """The stored row with id `ident`; raises `UnknownId` when there is none."""
        s = self._s
        row = s.find(self._check_one_id(ident))
        if row is None:
            raise UnknownId(f"id {ident!r} is not in {self._path}")
        return self._record(row)

    def _record(self, row: int) -> Record:
        s = self._s
        seg, local = s.locate(row)
        f16 = s.segment_array("f16", seg)
        if f16 is not None:
            vector = np.array(f16[local], dtype=np.float32)
        else:
            vector = codecs.dequantize_int8(s.segment_array("int8", seg)[local],
                                            s.calibration())
        return Record(s.id_at(seg, local), vector, s.text_at(seg, local),
                      s.metadata_at(seg, local))

    def ids(self) -> list[Id]:
        """Ids of the live rows, in row order (reads every id: O(rows))."""
        s = self._s
        deleted = s.deleted_mask()
        out: list[Id] = []
        for seg, info in enumerate(s.directory.segments):
            if s.meta["id_type"] == "int":
                ids = s.segment_array("ids.int", seg).tolist()
            else:
                ids = s.table("ids", seg).all()
            alive = ~deleted[info.row_start:info.row_start + info.rows]
            out += [i for i, keep in zip(ids, alive.tolist()) if keep]
        return out

    def info(self) -> dict[str, Any]:
        return _info(self._s)

    # --- search ------------------------------------------------------------------------

    def search(self, query: Any, k: int = 10, *, filter: dict | None = None,  # noqa: A002
               min_score: float | None = None, m: int | None = None, exact: bool = False,
               rescore_f16: bool = True, threads: int | None = None,
               embedder: Any = None) -> Results | BatchResults:
        """Search by text or by vector.

        A str or a [dim] vector gives `Results`; a list of str or an [n, dim] array gives
        `BatchResults` (one `Results` per query, in order).

        Parameters
        ----------
        k : results per query (fewer only when fewer rows match).
        filter : metadata condition, e.g. {"lang": "en", "year": {"$gte": 2020}} (see
            edgevec.filters); evaluated as a row mask inside the scan.
        min_score : drop results scoring below this.
        m : rescoring depth of the funnel: k*m candidates by Hamming distance are rescored
            with int8 (then float16 when stored). Default: the value calibrated at build.
        exact : skip the funnel: scan every row (float16 when stored, else int8).
        threads : threads for the scans (default: all cores).
        embedder : only to check that vectors you embedded yourself come from the index's
            model: an Embedder whose identity differs raises ModelMismatch.
        """
        s = self._s
        k = S.check_k(k)
        if embedder is not None:
            self._check_embedder(embedder)
        if isinstance(query, str) or (isinstance(query, (list, tuple)) and query
                                      and all(isinstance(t, str) for t in query)):
            single = isinstance(query, str)
            query = self._embed([query] if single else list(query), "a text query")
        else:
            single = np.ndim(query) == 1
        q = S.check_query(query, s.dim)
        if s.meta["metric"] == "cosine":
            q = normalise(q)
        if m is None:
            m = s.meta.get("rescore_m") or S.DEFAULT_M
        m = S.check_k(m, "m")
        exact = check_flag(exact, "exact")
        if min_score is not None and (isinstance(min_score, bool) or not isinstance(
                min_score, (int, float)) or abs(min_score) > 1e300 or min_score != min_score):
            raise InvalidInput(f"min_score must be a finite number, got {min_score!r}")
        segments = self._segments(s, filter)
        if segments and not exact and len(q) >= BATCH_MIN_QUERIES:
            found = S.funnel_search_batch(segments, s.calibration(), q, k, m=m,
                                          rescore_f16=rescore_f16, threads=threads)
        else:
            found = [None] * len(q)
        out = []
        for qi, done in zip(q, found):
            if done is not None:
                scores, rows = done
            elif not segments:
                scores, rows = np.zeros(0, np.float32), np.zeros(0, np.int64)
            elif exact:
                scores, rows = self._exact(segments, s, qi, k, threads)
            else:
                scores, rows = S.funnel_search(segments, s.calibration(), qi, k, m=m,
                                               rescore_f16=rescore_f16, threads=threads)
            if min_score is not None:
                keep = scores >= min_score
                scores, rows = scores[keep], rows[keep]
            out.append(self._results(scores, rows))
        return out[0] if single else BatchResults(tuple(out))

    def _check_embedder(self, embedder) -> None:
        from .embed import Embedder
        from .errors import ModelMismatch
        if not isinstance(embedder, Embedder):
            raise InvalidInput(f"embedder must be an edgevec.Embedder, got "
                               f"{type(embedder).__name__}")
        stored = self._s.meta.get("embedder")
        if stored is None:
            embedder.check_dim(self._s.dim, self._path)
            return
        if not embedder.same_model(stored):
            raise ModelMismatch(f"{self._path} was built with model {stored.get('name')} "
                                f"({stored.get('variant')}, fingerprint "
                                f"{(stored.get('fingerprint') or stored.get('sha256', ''))[:12]}"
                                f"...); the given embedder is {embedder.name} (fingerprint "
                                f"{embedder.identity['fingerprint'][:12]}...: model, tokenizer "
                                "and pooling together). Query with text and the index embeds it "
                                "with its own model")

    def _segments(self, s: Snapshot, filter: dict | None = None  # noqa: A002
                  ) -> list[S.Segment]:
        deleted = s.deleted_mask() if s.meta["deleted"] else None
        matches = None
        if filter is not None:
            from .filters import segment_masks
            matches = segment_masks(s, filter)
        segs = []
        for g, info in enumerate(s.directory.segments):
            allow = None
            if deleted is not None:
                part = deleted[info.row_start:info.row_start + info.rows]
                if part.any():
                    allow = ~part
            if matches is not None:
                allow = matches[g] if allow is None else allow & matches[g]
            segs.append(S.Segment(s.segment_array("binary", g), s.segment_array("int8", g),
                                  s.segment_array("f16", g), info.row_start, allow))
        return segs

    def _exact(self, segments, s: Snapshot, q: np.ndarray, k: int, threads):
        scores, rows = [], []
        qq = None
        for seg in segments:
            if seg.f16 is not None:
                sc, r = S.exact_topk_f16(seg.f16, q, k, allow=seg.allow)
            else:
                if qq is None:
                    qq = S.quantize_query(q, s.calibration())
                sc, r = S.dot_i8_topk(seg.int8, qq, k, allow=seg.allow, threads=threads)
            scores.append(np.asarray(sc, np.float32))
            rows.append(r + seg.row_start)
        return S.best_k(np.concatenate(scores), np.concatenate(rows), k)

    def _results(self, scores: np.ndarray, rows: np.ndarray) -> Results:
        s = self._s
        ids, texts, metas = [], [], []
        for row in rows.tolist():
            seg, local = s.locate(row)
            ids.append(s.id_at(seg, local))
            texts.append(s.text_at(seg, local))
            metas.append(s.metadata_at(seg, local))
        scores = np.asarray(scores, dtype=np.float32)
        scores.flags.writeable = False
        rows = np.asarray(rows, dtype=np.int64)
        rows.flags.writeable = False
        return Results(tuple(ids), scores, tuple(texts), tuple(metas), rows)

    def verify(self) -> dict[str, Any]:
        """Check every checksum and structural rule; raises a FormatError on damage."""
        return self._s.verify()

    # --- writing -----------------------------------------------------------------------

    def add(self, vectors: Any = None, *, ids: Sequence[Id] | None = None,
            texts: Sequence[str] | None = None,
            metadata: Sequence[dict[str, Any] | None] | None = None,
            embedder: Any = None) -> list[Id]:
        """Add a batch of rows as one atomic commit and return their ids.

        Parameters
        ----------
        vectors : float array [n, dim] (or [dim] for one row); finite values. With metric
            "cosine" rows are L2-normalised (a zero row is an error).
        ids : n unique ids, all int or all str (the index keeps the type of its first
            batch). Omitted: consecutive ints are assigned. An id already live in the index
            raises `DuplicateId` and nothing is written.
        texts : n strings stored with the rows; without vectors, an index with a model
            embeds them.
        metadata : n dicts (or None) of JSON values; scalar fields become filterable columns.

        The first batch of at least CALIBRATE_MIN_ROWS rows also calibrates the funnel's
        rescoring depth m (recall@10 >= 0.95 against exact search on a sample of the batch)
        and stores it in the file.
        """
        w = self._w()
        s = w.snapshot
        text_list = None
        if vectors is None:
            if texts is None:
                raise InvalidInput("add() needs texts= (indexes with a model) or vectors=")
            if not isinstance(texts, str):  # a single str is refused by check_texts
                texts = list(texts)  # a generator is read once, here
            text_list = check_texts(texts, len(texts))
            vectors = self._embed(text_list, "add(texts=...) without vectors")
        elif embedder is not None:
            self._check_embedder(embedder)
        x = self._check_vectors(vectors, s)
        n = len(x)
        if n == 0:
            return []
        id_list, id_type, next_auto = self._check_ids(ids, n, s)
        if text_list is None:
            text_list = check_texts(texts, n)
        meta_list = check_metadata(metadata, n)
        keys = id_keys(id_list, id_type)
        self._check_unique(id_list, keys, s)

        meta_update: dict[str, Any] = {"id_type": id_type, "next_auto_id": next_auto}
        pending: list[Pending] = []
        calibration = s.calibration()
        if calibration is None:
            calibration = codecs.calibrate_int8(x)
            pending.append(Pending.of("calibration", calibration))
        binary, int8 = codecs.sign_bits(x), codecs.quantize_int8(x, calibration)
        if s.meta.get("rescore_m") is None and n >= CALIBRATE_MIN_ROWS:
            m, _ = S.choose_m(x, k=10, target=0.95, sample=100, calibration=calibration,
                              codes=(binary, int8))
            meta_update["rescore_m"] = S.depth_to_store(m)
        columns: list = []
        meta_json = None
        if meta_list is not None:
            columns, added = encode_columns(meta_list, s.meta["fields"])
            if added:
                meta_update["fields"] = {**s.meta["fields"], **added}
            meta_json = [json_dumps(m, f"metadata[{i}]") if m else ""
                         for i, m in enumerate(meta_list)]
        pending += batch_pending(
            binary=binary, int8=int8,
            f16=codecs.to_f16(x) if "f16" in s.meta["codecs"] else None,
            ids=id_list, id_type=id_type, texts=text_list, meta_json=meta_json,
            columns=columns)
        w.commit(pending, segment_rows=n, meta=meta_update)
        return list(id_list)

    def delete(self, ids: Iterable[Id]) -> int:
        """Delete rows by id as one atomic commit; returns how many were deleted.
        An id that is not live raises `UnknownId` and nothing is deleted."""
        w = self._w()
        s = w.snapshot
        if isinstance(ids, (str, int, np.integer)):  # one id (np.int64(3) was a TypeError)
            ids = [ids]
        wanted = list(dict.fromkeys(self._check_one_id(i) for i in as_list(ids, "ids")))
        if not wanted:
            return 0
        rows = s.find_many(wanted, id_keys(wanted, s.meta["id_type"]))
        missing = [i for i, r in zip(wanted, rows.tolist()) if r < 0]
        if missing:
            raise UnknownId(f"{len(missing)} of {len(wanted)} ids are not in {self._path} "
                            f"(first: {missing[0]!r}); nothing was deleted")
        w.commit([Pending.of("tombstones", np.sort(rows).astype("<u8"))], segment_rows=None)
        return len(wanted)

    def calibrate(self, *, target: float = 0.95, k: int = 10, sample_rows: int = 50_000,
                  queries: int = 200, seed: int = 0) -> dict[str, Any]:
        """Measure the funnel's recall@k against exact search on a sample of the stored
        vectors and store the smallest rescoring depth m that reaches `target` (one commit).

        The vectors are the stored float16 ones, or the int8 codes decoded when no float16
        are stored; at most `sample_rows` live rows (seeded) form the sample corpus, and
        `queries` of them are the queries (each query's own row is excluded)."""
        w = self._w()
        s = w.snapshot
        if isinstance(target, bool) or not isinstance(target, (int, float)) \
                or not 0 < target <= 1:
            raise InvalidInput(f"target must be a number in (0, 1], got {target!r}")
        k = S.check_k(k)
        queries = S.check_k(queries, "queries")  # 0 queries once gave recall 1.0 and m=1
        sample_rows = S.check_k(sample_rows, "sample_rows")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidInput(f"seed must be a non-negative int, got {seed!r}")
        live = np.flatnonzero(~s.deleted_mask()) if s.meta["deleted"] else np.arange(s.rows)
        if len(live) <= k + 1:
            raise InvalidInput(f"calibration needs more than {k + 1} rows; the index has "
                               f"{len(live)}")
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(live, size=min(sample_rows, len(live)), replace=False))
        vectors = np.empty((len(rows), s.dim), dtype=np.float32)
        starts = np.array([g.row_start for g in s.directory.segments])
        seg_of = np.searchsorted(starts, rows, side="right") - 1
        cal = s.calibration()
        for g in np.unique(seg_of):
            pick = seg_of == g
            local = rows[pick] - starts[g]
            f16 = s.segment_array("f16", int(g))
            vectors[pick] = (f16[local].astype(np.float32) if f16 is not None else
                             codecs.dequantize_int8(s.segment_array("int8", int(g))[local], cal))
        m, recalls = S.choose_m(vectors, k=k, target=target, sample=queries, seed=seed,
                                calibration=cal)
        chosen = S.depth_to_store(m)
        w.commit([], segment_rows=None, meta={"rescore_m": chosen})
        return {"m": chosen, "reached": m is not None, "recall_by_m": recalls,
                "sample_rows": len(rows)}

    def compact(self) -> dict[str, int]:
        """Rewrite the live rows into a fresh file that atomically replaces this one.
        Returns the file size before and after."""
        w = self._w()
        before = os.path.getsize(self._path)
        s = w.snapshot
        pending, total = compact_pending(s)
        meta = dict(s.meta, rows=0, deleted=0)
        w.replace_with(meta, pending, total if total else None)
        return {"bytes_before": before, "bytes_after": os.path.getsize(self._path),
                "rows": total}

    # --- validation ----------------------------------------------------------------------

    def _check_vectors(self, vectors: Any, s: Snapshot) -> np.ndarray:
        try:
            x = np.asarray(vectors)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"vectors must be a numeric array: {exc}") from None
        if x.dtype.kind not in "fiu":
            raise InvalidInput(f"vectors must be a float array, got dtype {x.dtype}")
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise InvalidInput(f"vectors must have shape [n, {s.dim}], got {list(x.shape)}")
        if x.shape[1] != s.dim:
            raise DimensionMismatch(f"vectors have dimension {x.shape[1]} but {self._path} "
                                    f"holds {s.dim}-dimensional vectors")
        x = np.ascontiguousarray(x, dtype=np.float32)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise InvalidInput(f"vector {bad} contains NaN or infinity (after conversion to "
                               "float32); every value must be finite")
        if s.meta["metric"] == "cosine" and len(x):
            x = normalise(x)
        return x

    def _check_one_id(self, ident: Any) -> Id:
        id_type = self._s.meta["id_type"]
        value, kind = normalise_id(ident)
        if id_type is not None and kind != id_type:
            raise IdTypeMismatch(f"id {ident!r} is {kind} but the ids of {self._path} are "
                                 f"{id_type}")
        return value

    def _check_ids(self, ids: Any, n: int, s: Snapshot) -> tuple[list[Id], str, int]:
        id_type = s.meta["id_type"]
        next_auto = s.meta["next_auto_id"]
        if ids is None:
            if id_type == "str":
                raise InvalidInput(f"{self._path} has str ids: pass ids= for every row")
            return list(range(next_auto, next_auto + n)), "int", next_auto + n
        if isinstance(ids, (str, bytes)):
            raise InvalidInput("ids must be a sequence of ids, not a single str")
        ids = as_list(ids, "ids")
        if len(ids) != n:
            raise InvalidInput(f"got {len(ids)} ids for {n} vectors; give one id per row")
        out = []
        kinds = set()
        for i, ident in enumerate(ids):
            try:
                value, kind = normalise_id(ident)
            except InvalidInput as exc:
                raise InvalidInput(f"ids[{i}]: {exc}") from None
            out.append(value)
            kinds.add(kind)
        if len(kinds) > 1:
            raise IdTypeMismatch("ids mix int and str; an index uses one id type")
        kind = kinds.pop()
        if id_type is not None and kind != id_type:
            raise IdTypeMismatch(f"ids are {kind} but the ids of {self._path} are {id_type}")
        if kind == "int":
            next_auto = max(next_auto, max(out) + 1) if max(out) + 1 < 2**63 else next_auto
        return out, kind, next_auto

    def _check_unique(self, ids: list[Id], keys: np.ndarray, s: Snapshot) -> None:
        if len(set(ids)) != len(ids):
            seen: set = set()
            dup = next(i for i in ids if i in seen or seen.add(i))
            raise DuplicateId(f"id {dup!r} appears twice in this batch; ids must be unique")
        rows = s.find_many(ids, keys)
        if (rows >= 0).any():
            j = int(np.argmax(rows >= 0))
            raise DuplicateId(f"id {ids[j]!r} is already in {self._path}; delete it first to "
                              "replace it; nothing was added")


def _info(s: Snapshot) -> dict[str, Any]:
    d = s.directory
    by_kind: dict[str, int] = {}
    for sec in d.sections:
        by_kind[sec.kind] = by_kind.get(sec.kind, 0) + sec.length
    return {
        "path": s.path,
        "format_version": f"{s.header.preamble.major}.{s.header.preamble.minor}",
        "reader_version": f"{VERSION_MAJOR}.{VERSION_MINOR}",
        "generation": s.generation,
        "dim": s.dim,
        "metric": s.meta["metric"],
        "rows": s.live,
        "stored_rows": s.rows,
        "deleted": s.meta["deleted"],
        "segments": len(d.segments),
        "id_type": s.meta["id_type"],
        "codecs": list(s.meta["codecs"]),
        "fields": dict(s.meta["fields"]),
        "rescore_m": s.meta.get("rescore_m"),
        "embedder": s.meta.get("embedder"),
        "user": s.meta["user"],
        "file_bytes": s.header.file_size,
        "committed_bytes": s.header.slot.committed_length,
        "section_bytes": by_kind,
    }


def open(path: str | os.PathLike, *, writable: bool = False,  # noqa: A001 - public name
         lock_timeout: float = 0.0) -> Index:
    """Open an index file; see `Index.open`."""
    return Index.open(path, writable=writable, lock_timeout=lock_timeout)


def info(path: str | os.PathLike) -> dict[str, Any]:
    """Header and directory facts of an index file, without touching its rows."""
    s = Snapshot(check_path(path))
    try:
        return _info(s)
    finally:
        s.close()


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Check every checksum and structural rule of an index file; raises FormatError."""
    s = Snapshot(check_path(path))
    try:
        return s.verify()
    finally:
        s.close()

