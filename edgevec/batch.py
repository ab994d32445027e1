"""The batch encoder: one committed state (a `Snapshot`) and a batch of user rows -> the
sections to append and the header changes, validated and encoded, ready for one commit.

Calibration on first use (the int8 ranges), sign bits, int8 codes, float16 vectors when
stored, ids and their lookup keys, texts, metadata JSON and columns, and the funnel's
rescoring depth m: measured on the first batch of CALIBRATE_MIN_ROWS rows and again when
the index has grown RECALIBRATE_GROWTH-fold since (on a sample of every live row).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import codecs
from .calibration import choose_m, depth_to_store, needs_calibration
from .errors import DuplicateId, InvalidInput, UnknownId
from .funnel import rescoring_codes
from .fusion import RRF_DEPTH, RRF_K
from .lexical import Analyzer
from .lexical.bm25 import BM25
from .search import ENGINE
from .storage.columns import encode_columns
from .storage.postings import Postings
from .storage.layout import CODEC_SETS, METRICS
from .storage.reader import Snapshot
from .storage.segments import batch_pending, compact_pending, postings_pending
from .storage.writer import NEW_SEGMENT, Pending
from .validate import (
    as_list,
    check_choice,
    check_dim,
    check_flag,
    check_ids,
    check_json_object,
    check_k,
    check_metadata,
    check_number,
    check_one_id,
    check_seed,
    check_texts,
    check_vectors,
    json_dumps,
    normalise,
)

# rows sampled (live rows of the index, plus the new batch) when a growing index measures m
RECALIBRATE_SAMPLE_ROWS = 200_000


# Index.create(codecs=...): the vector codes each preset keeps (bench/README.md, "The
# compression ladder", has the measurements they were chosen from).
PRESETS = {
    # sign bits scanned, int8 rescoring: 432 B/row at 384-d, recall@10 0.95-0.98
    "balanced": ("binary", "int8"),
    # + float16 vectors rescoring the best 4k: 1,200 B/row, recall@10 0.99-1.0
    "exact": ("binary", "int8", "f16"),
    # one transform code scanned by tables: 110 B/row, recall@10 0.92-0.93
    "compact": ("transform",),
}
# rows of the first batch a compact index fits its transform code on, or a projected index
# its PCA (at most), and the fewest it accepts: FIT_ROWS_PER_DIM a dimension, up to
# FIT_MIN_ROWS (a covariance estimated from fewer rows is mostly noise)
FIT_ROWS = 20_000
FIT_MIN_ROWS = 1_000
FIT_ROWS_PER_DIM = 25


def codec_set(spec: Any, store_f16: bool) -> list[str]:
    """meta.codecs for Index.create's `codecs=` (a preset name, a list of code kinds, or
    None: "balanced", or "exact" with store_f16)."""
    if spec is None:
        return list(PRESETS["exact" if store_f16 else "balanced"])
    if isinstance(spec, str):
        chosen = PRESETS.get(spec)
        if chosen is None:
            raise InvalidInput(f"codecs={spec!r:.40} is not a preset: choose one of "
                               f"{sorted(PRESETS)} or a list such as {list(PRESETS['exact'])}")
    else:
        chosen = tuple(as_list(spec, "codecs"))
        if chosen not in CODEC_SETS:
            raise InvalidInput(f"codecs={list(chosen)!r:.80} is not a set edgevec stores: "
                               f"one of {[list(c) for c in CODEC_SETS]}")
    if store_f16 and "f16" not in chosen:
        raise InvalidInput(f"store_f16=True keeps float16 vectors, which codecs={spec!r:.40} "
                           "does not: use codecs=\"exact\" (or leave out one of the two)")
    return list(chosen)


def projection_meta(dim: int, pca: Any, dims: Any) -> dict[str, Any] | None:
    """meta.projection for Index.create's `pca=` (a PCA to that many dimensions, fitted on
    the first batch) or `dims=` (the first that many dimensions: a Matryoshka model's
    cut), or None for neither."""
    if pca is None and dims is None:
        return None
    if pca is not None and dims is not None:
        raise InvalidInput("pca= and dims= are two kinds of projection: pass one of them")
    kind, value, name = ("pca", pca, "pca") if pca is not None else ("prefix", dims, "dims")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not 1 <= int(value) < dim:
        raise InvalidInput(f"{name}={value!r:.40} must be an int in [1, {dim - 1}]: the "
                           f"dimensions kept of the index's {dim}")
    return {"kind": kind, "dims": int(value)}


def new_meta(dim: Any, metric: Any, store_f16: Any, user_metadata: Any,
             lexical: Any = False, lexical_only: Any = False, bm25: Any = None,
             codecs_spec: Any = None, pca: Any = None, dims: Any = None) -> dict[str, Any]:
    """The header of a new, empty index (the arguments of `Index.create`, checked).
    `lexical`: False, True (the default analyzer) or an `Analyzer`. `lexical_only`: no
    vectors at all (dim 0): texts searched by BM25 alone. `bm25`: see `lexical_meta`.
    `codecs_spec`: see `codec_set`. `pca`, `dims`: see `projection_meta`."""
    f16 = check_flag(store_f16, "store_f16")
    if check_flag(lexical_only, "lexical_only"):
        if dim is not None or f16 or lexical is False or codecs_spec is not None \
                or pca is not None or dims is not None:
            raise InvalidInput("a lexical_only index keeps no vectors: leave out dim=, model=, "
                               "codecs=, pca=, dims= and store_f16=, and keep lexical (True "
                               "or an Analyzer)")
        dim, codecs_ = 0, []
    elif dim is None:
        raise InvalidInput("Index.create needs dim= (your own vectors), model= (texts) or "
                           "lexical_only=True (texts, BM25 search only)")
    else:
        dim, codecs_ = check_dim(dim), codec_set(codecs_spec, f16)
    meta = {"dim": dim, "metric": check_choice(metric, METRICS, "metric"),
            "id_type": None, "codecs": codecs_, "rows": 0, "deleted": 0, "next_auto_id": 0,
            "fields": {}, "rescore_m": None, "embedder": None,
            "user": check_json_object(user_metadata, "user_metadata"),
            "lexical": lexical_meta(lexical, bm25)}
    if "transform" in codecs_:
        meta["transform"] = None  # fitted on the first batch
    if dim:
        projection = projection_meta(dim, pca, dims)
        if projection:
            meta["projection"] = projection
    return meta


def check_fit_rows(x: np.ndarray, path: str, what: str) -> None:
    """A first batch x [n, d] that fits a stored model (a transform code, a PCA) has at
    least min(FIT_MIN_ROWS, FIT_ROWS_PER_DIM * d) rows."""
    need = min(FIT_MIN_ROWS, FIT_ROWS_PER_DIM * x.shape[1])
    if len(x) < need:
        raise InvalidInput(f"{path} {what}: its first batch fits it and needs at least "
                           f"{need} rows (got {len(x)}); add a larger first batch, or "
                           "create the index without it")


def fit_sample(x: np.ndarray) -> np.ndarray:
    """Up to FIT_ROWS rows spread evenly over a first batch."""
    return x[::max(1, len(x) // FIT_ROWS)][:FIT_ROWS]


def fit_transform(x: np.ndarray, path: str) -> tuple[dict, Pending, dict[str, Any]]:
    """A compact index's first batch (checked, normalised) -> (its transform code, the
    transform.model section, meta.transform), fitted on up to FIT_ROWS rows."""
    check_fit_rows(x, path, "is a compact index (codecs=\"compact\"), whose rows are "
                   "stored in a code fitted on them")
    code = codecs.fit_transform_code(fit_sample(x), 0,
                                     max_bytes=codecs.compact_bytes(x.shape[1]))
    model = np.vstack([code["mean"][None], code["scale"][None], code["rotation"]])
    return (code, Pending.of("transform.model", model.astype("<f4")),
            {"bits": [int(b) for b in code["bits"]], "quantizer": code["quantizer"],
             "block": codecs.TRANSFORM_BLOCK})


def lexical_meta(lexical: Any, bm25: Any = None, keep: dict | None = None
                 ) -> dict[str, Any] | None:
    """meta.lexical for False (None), True (the default analyzer) or an Analyzer.
    `bm25`: a `BM25(k1, b)` or {"k1": .., "b": ..} (default: k1 1.2, b 0.75). `keep`: the
    meta.lexical being replaced, whose scoring and fusion settings carry over."""
    if isinstance(lexical, Analyzer):
        analyzer = lexical
    elif check_flag(lexical, "lexical"):
        analyzer = Analyzer(stop_words="en")
    else:
        if bm25 is not None:
            raise InvalidInput("bm25= sets the scoring of lexical search: the index needs "
                               "lexical=True (or an Analyzer), a model, or lexical_only=True")
        return None
    if isinstance(bm25, dict):
        unknown = set(bm25) - {"k1", "b"}
        if unknown:
            raise InvalidInput(f"bm25 takes k1 and b, not {sorted(unknown)}")
        bm25 = BM25(**bm25)
    elif bm25 is not None and not isinstance(bm25, BM25):
        raise InvalidInput(f"bm25 must be an edgevec.lexical.bm25.BM25 or a dict of k1 and b, "
                           f"not {type(bm25).__name__}")
    settings = {"bm25": {"k1": BM25().k1, "b": BM25().b},
                "rrf": {"k": RRF_K, "depth": RRF_DEPTH}}
    if keep:
        settings = {key: dict(keep[key]) for key in settings}
    if bm25 is not None:
        settings["bm25"] = {"k1": float(bm25.k1), "b": float(bm25.b)}
    return {"analyzer": analyzer.settings(), "fingerprint": analyzer.fingerprint(),
            **settings}


def tombstones(snap: Snapshot, ids: Any) -> tuple[list[Pending], int]:
    """The tombstones that delete live rows by id -> (sections, rows deleted). An id that
    is not live raises UnknownId and nothing is deleted."""
    if isinstance(ids, (str, int, np.integer)):  # one id (np.int64(3) was a TypeError)
        ids = [ids]
    id_type = snap.meta["id_type"]
    wanted = list(dict.fromkeys(check_one_id(i, id_type, snap.path)
                                for i in as_list(ids, "ids")))
    if not wanted:
        return [], 0
    rows = snap.find_many(wanted)
    missing = [i for i, r in zip(wanted, rows.tolist()) if r < 0]
    if missing:
        raise UnknownId(f"{len(missing)} of {len(wanted)} ids are not in {snap.path} "
                        f"(first: {missing[0]!r:.60}); nothing was deleted")
    return [_tombstones(rows)], len(wanted)


def _tombstones(rows: np.ndarray) -> Pending:
    return Pending.of("tombstones", np.sort(rows).astype("<u8"))


def compaction(snap: Snapshot, lexical: dict | None) -> tuple[list[Pending], int]:
    """The sections of one segment holding every live row of `snap` (see
    storage.segments.compact_pending), with postings when `lexical` (the new
    meta.lexical): the segments' postings merged through the old -> new row map when the
    index already keeps them with the same analyzer (no text is analysed again), else
    built from the live rows' texts by that analyzer."""
    pending, total = compact_pending(snap)  # (verifies the file, postings included)
    if lexical and total:
        old = snap.meta.get("lexical")
        if old and old["fingerprint"] == lexical["fingerprint"]:
            postings = Postings.merge([(snap.postings(g), snap.live_rows(g))
                                       for g, info in enumerate(snap.segments) if info.rows])
        else:
            postings = analyze(Analyzer.from_settings(lexical["analyzer"]),
                               [t or "" for t in snap.texts_of(snap.live_rows())])
        pending += postings_pending(postings, {"segment": NEW_SEGMENT})
    return pending, total


# what the Python analyzer spends per character of text (~65 us for a 100-word passage)
PYTHON_SECONDS_PER_CHAR = 1e-7


def analyze(analyzer: Analyzer, texts: list[str]) -> Postings:
    """The postings of a batch of texts: by the compiled kernels, or in Python while a
    process has not loaded Numba and the batch is small (search.ScanEngine's rule: the
    same postings either way, tested)."""
    estimate = sum(map(len, texts)) * PYTHON_SECONDS_PER_CHAR
    if not ENGINE.use_numpy_for(estimate):
        return analyzer.postings(texts)
    start = time.perf_counter()
    postings = analyzer.postings(texts, compiled=False)
    ENGINE.numpy_seconds += time.perf_counter() - start
    return postings


@dataclass(frozen=True)
class Batch:
    """What one add() commits: sections, header changes, and the ids of the rows."""

    pending: list[Pending]
    meta: dict[str, Any]
    ids: list
    rows: int


def encode(snap: Snapshot, vectors: Any, *, ids: Any = None, texts: Any = None,
           metadata: Any = None, replace: bool = False) -> Batch:
    """Check and encode a batch of rows for `snap`'s index (see `Index.add`); a
    lexical-only index takes texts and no vectors. `replace`: live rows with the batch's
    ids are deleted by tombstones in the same commit (else they raise DuplicateId)."""
    replace = check_flag(replace, "replace")
    if snap.dim == 0:
        if vectors is not None or texts is None:
            raise InvalidInput(f"{snap.path} is a lexical-only index (no vectors): add texts= "
                               "alone")
        x, text_list = None, check_texts(texts, None)
        n = len(text_list or ())
    else:
        x = check_vectors(vectors, snap.dim)
        n = len(x)
        text_list = check_texts(texts, n)
    if n == 0:
        return Batch([], {}, [], 0)
    if x is not None and snap.meta["metric"] == "cosine":
        x = normalise(x)
    id_list, id_type, next_auto = check_ids(ids, n, snap.meta["id_type"],
                                            snap.meta["next_auto_id"], snap.path)
    meta_list = check_metadata(metadata, n)
    postings = None
    if snap.meta.get("lexical"):
        if text_list is None:
            raise InvalidInput(f"{snap.path} keeps lexical postings (hybrid search): pass "
                               "texts= with every batch")
        postings = analyze(Analyzer.from_settings(snap.meta["lexical"]["analyzer"]),
                           text_list)
    rows = snap.find_many(id_list)
    if (rows >= 0).any() and not replace:
        j = int(np.argmax(rows >= 0))
        raise DuplicateId(f"id {id_list[j]!r:.60} is already in {snap.path}; delete it first "
                          "or add with replace=True; nothing was added")

    meta: dict[str, Any] = {"id_type": id_type, "next_auto_id": next_auto}
    pending: list[Pending] = []
    if (rows >= 0).any():  # replace: the old rows go in the commit that adds the new ones
        pending.append(_tombstones(rows[rows >= 0]))
    binary = int8 = f16 = transform = float8 = None
    if x is not None and snap.meta.get("projection"):
        projection = snap.projection()
        if projection is None:  # a pca fitted on the first batch
            check_fit_rows(x, snap.path, f"projects its vectors by a PCA to "
                           f"{snap.code_dim} dimensions")
            projection = codecs.fit_projection(fit_sample(x), snap.code_dim)
            pending.append(Pending.of("projection", projection.matrix()))
        x = projection.rows(x)
    if x is not None and "transform" in snap.meta["codecs"]:
        code = snap.transform_code()
        if code is None:
            code, section, meta["transform"] = fit_transform(x, snap.path)
            pending.append(section)
        packed = codecs.transform_pack(codecs.transform_encode(x, code), code)
        blocks = codecs.transform_blocks(packed)
        transform = blocks.reshape(len(blocks), -1)
    elif x is not None:  # the funnel's codes: sign bits, int8 or float8 rescoring them
        tier = snap.float8() or snap.calibration()
        if tier is None:  # the first rows fit it
            kind = snap.meta["codecs"][1]
            if kind.startswith("f8"):
                tier = (kind[2:], codecs.float8_scale(x, kind[2:]))
                pending.append(Pending.of("float8.scale", tier[1]))
            else:
                tier = codecs.calibrate_int8(x)
                pending.append(Pending.of("calibration", tier))
        binary, rescoring = codecs.sign_bits(x), rescoring_codes(tier, x)
        if isinstance(tier, tuple):
            float8 = rescoring
        else:
            int8 = rescoring
        f16 = codecs.to_f16(x) if snap.has_f16 else None
        if needs_calibration(snap.meta.get("rescore_m"), snap.meta.get("rescore_rows"),
                             snap.live + n):
            meta.update(measure_m(snap, x, (binary, rescoring), calibration=tier)[0])
    columns: list = []
    meta_json = None
    if meta_list is not None:
        columns, added = encode_columns(meta_list, snap.meta["fields"])
        if added:
            meta["fields"] = {**snap.meta["fields"], **added}
        meta_json = [json_dumps(m, f"metadata[{i}]") if m else ""
                     for i, m in enumerate(meta_list)]
    pending += batch_pending(
        binary=binary, int8=int8, f16=f16, transform=transform, float8=float8,
        ids=id_list, id_type=id_type, texts=text_list, meta_json=meta_json, columns=columns,
        postings=postings)
    return Batch(pending, meta, id_list, n)


def measure_m(snap: Snapshot, new: np.ndarray | None = None,
              new_codes: tuple[np.ndarray, np.ndarray] | None = None, *,
              calibration: np.ndarray | tuple | None = None,
              target: float = 0.95, k: int = 10, sample_rows: int = RECALIBRATE_SAMPLE_ROWS,
              queries: int = 200, seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """Measure the funnel's depth m on a seeded sample of at most `sample_rows` of the
    live rows of `snap` and the `new` rows about to be added (checked and normalised,
    with their `new_codes` and the rescoring tier they were encoded with, funnel.Tier, for
    the first batch of an index) -> (the header change to commit: {"rescore_m", "rescore_rows"},
    the report: {"m", "reached", "recall_by_m", "sample_rows"})."""
    target = check_number(target, "target", low=0, high=1, low_open=True)
    k = check_k(k)
    queries = check_k(queries, "queries")  # 0 queries once gave recall 1.0 and m=1
    sample_rows = check_k(sample_rows, "sample_rows")
    seed = check_seed(seed)
    if not snap.dim:
        raise InvalidInput(f"{snap.path} is a lexical-only index: it has no vectors to "
                           "calibrate the funnel on")
    if "binary" not in snap.meta["codecs"]:
        raise InvalidInput(f"{snap.path} is a compact index: it scans one code and has no "
                           "funnel depth to calibrate")
    live = snap.live_rows()
    n_new = 0 if new is None else len(new)
    total = len(live) + n_new
    if total <= k + 1:
        raise InvalidInput(f"calibration needs more than {k + 1} rows; the index has {total}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(sample_rows, total), replace=False))
    old, fresh = pick[pick < len(live)], pick[pick >= len(live)] - len(live)
    if calibration is not None:
        cal = calibration
    else:
        cal = snap.float8() or snap.calibration()
    if not len(old) and len(fresh) == n_new:
        x, codes = new, new_codes  # the first batch, whole: its codes are at hand
    else:
        x = np.concatenate([snap.stored_vectors(live[old])]
                           + ([new[fresh]] if n_new else []))
        if snap.meta["metric"] == "cosine" and not snap.meta.get("projection"):
            x = normalise(x)  # stored rows come back rounded (f16, int8 or float8)
        codes = None
    m, recalls = choose_m(x, k=k, target=target, sample=queries, seed=seed,
                          calibration=cal, codes=codes)
    chosen = depth_to_store(m)
    return ({"rescore_m": chosen, "rescore_rows": total},
            {"m": chosen, "reached": m is not None, "recall_by_m": recalls,
             "sample_rows": len(x)})
