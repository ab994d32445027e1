"""Validation of user input to the Index API: ids, vectors and queries, texts, metadata,
numbers and flags. Every argument check lives here, once.

Everything here raises an `InvalidInput` (or subclass) that names the offending value and
the fix, before anything is encoded, written or handed to a kernel.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import DimensionMismatch, DuplicateId, IdTypeMismatch, InvalidInput
from .paths import check_path  # noqa: F401 - re-exported: every argument check in one place
from .storage.columns import check_field_name
from .storage.directory import MAX_DIM

Id = int | str
MAX_ID_BYTES = 4096
# How deep metadata, user_metadata and filters may nest (dicts and lists inside each
# other): far beyond what a filter or a record needs, far below what would exhaust the
# interpreter's stack (10,000 levels raised RecursionError).
MAX_NESTING = 64


def check_unicode(text: str, what: str) -> None:
    """That `text` can be stored as UTF-8: a lone surrogate ("\\ud800", which a JSON
    escape or surrogateescape decoding can produce) cannot, and is refused with where it
    is."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} holds a lone surrogate {text[exc.start]!r} at character "
                           f"{exc.start}, which UTF-8 cannot store; remove it, or decode the "
                           "source text with errors='replace'") from None


def check_json_value(value: Any, what: str) -> None:
    """That `value` (metadata, user_metadata) is JSON edgevec can store and read back
    as given: dicts with str keys, lists, str (no lone surrogates), numbers, bools and
    None, nested at most MAX_NESTING levels. Walked without recursion, so no depth can
    exhaust the stack. NaN and other types are refused by json_dumps."""
    stack = [(value, (), 1)]
    while stack:
        v, where, depth = stack.pop()
        if isinstance(v, str):
            if not v.isascii():
                check_unicode(v, _at(what, where))
            continue
        if not isinstance(v, (dict, list, tuple)):
            continue
        if depth > MAX_NESTING:
            raise InvalidInput(f"{_at(what, where)} nests deeper than {MAX_NESTING} levels of "
                               "dicts and lists; flatten it (or store it as a JSON string)")
        if isinstance(v, dict):
            for key, item in v.items():
                if not isinstance(key, str):
                    raise InvalidInput(f"{_at(what, where)} has the key {key!r:.40} "
                                       f"({type(key).__name__}); keys must be str (JSON "
                                       "would turn it into a str)")
                if not key.isascii():
                    check_unicode(key, f"a key of {_at(what, where)}")
                stack.append((item, where + (key,), depth + 1))
        else:
            stack.extend((item, where + (i,), depth + 1) for i, item in enumerate(v))


def _at(what: str, where: tuple) -> str:
    """`what` followed by the keys and positions leading into it: metadata[3]['a'][0]
    (the first few of a deep path, and how deep it is)."""
    shown = "".join(f"[{k!r:.40}]" for k in where[:4])
    return what + shown + (f"[...] ({len(where)} levels down)" if len(where) > 4 else "")


def check_flag(value: Any, what: str) -> bool:
    """A yes/no option: True/False (NumPy's too) or 0/1."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))
                                               and value in (0, 1)):
        return bool(value)
    raise InvalidInput(f"{what} must be True or False, got {value!r:.60}")


def check_dim(dim: Any) -> int:
    """A vector dimension: an int in [1, MAX_DIM]."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) \
            or not 1 <= int(dim) <= MAX_DIM:
        raise InvalidInput(f"dim must be an int in [1, {MAX_DIM}], got {dim!r:.60}")
    return int(dim)


def check_choice(value: Any, choices: tuple, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"{what} must be one of {choices}, got {value!r:.60}")
    return value


def check_json_object(value: Any, what: str) -> dict:
    """A dict that JSON can store (None -> {})."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a dict, got {type(value).__name__}")
    check_json_value(value, what)
    json_dumps(value, what)
    return value


def check_k(k: Any, what: str = "k") -> int:
    """A positive int (NumPy ints too; not bool)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InvalidInput(f"{what} must be a positive int, got {k!r:.60}")
    return int(k)


def check_number(value: Any, what: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False) -> float:
    """A finite real number (not bool), optionally within [low, high] ((low, high] with
    low_open)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise InvalidInput(f"{what} must be a number, got {type(value).__name__} "
                           f"{value!r:.60}")
    v = float(value) if abs(value) < 1e300 else float("inf")
    below = low is not None and (v <= low if low_open else v < low)
    if v != v or abs(v) == float("inf") or below or (high is not None and v > high):
        where = ("" if low is None else f" > {low:g}" if low_open and high is None
                 else f" >= {low:g}" if high is None
                 else f" in {'(' if low_open else '['}{low}, {high}]")
        raise InvalidInput(f"{what} must be a finite number{where}, got {value!r:.60}")
    return v


def check_lock_timeout(value: Any) -> float:
    """Seconds to wait for a writer's lock: a finite number >= 0 (NaN or infinity used
    to wait forever on a locked file)."""
    return check_number(value, "lock_timeout (seconds to wait for the writer's lock)",
                        low=0.0)


def check_threads(threads: Any) -> int | None:
    """A thread count: None (all cores) or a positive int (NumPy's too; not bool)."""
    if threads is not None and (isinstance(threads, (bool, np.bool_))
                                or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise InvalidInput(f"threads must be None (all cores) or a positive int, got "
                           f"{threads!r:.60}")
    return None if threads is None else int(threads)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInput(f"seed must be a non-negative int, got {seed!r:.60}")
    return int(seed)


def check_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """float32 [n, dim], C-contiguous, finite, from a [dim] vector or an [n, dim] array of
    ints or floats (bool, complex, str and object arrays are refused). Rows and queries
    pass through this one check."""
    try:
        x = np.asarray(vectors)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be a numeric array: {exc}") from None
    if x.dtype.kind not in "fiu":
        raise InvalidInput(f"{what} must be a float array, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InvalidInput(f"{what} must have shape [{dim}] or [n, {dim}], got "
                           f"{list(x.shape)}")
    if x.shape[1] != dim:
        raise DimensionMismatch(f"{what} have dimension {x.shape[1]} but the index holds "
                                f"{dim}-dimensional vectors")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: refused
        x = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise InvalidInput(f"{what}[{bad}] contains NaN or infinity (after conversion to "
                           "float32); every value must be finite")
    return x


def as_list(values: Any, what: str) -> list:
    """list(values) for any iterable; an InvalidInput naming `what` otherwise."""
    if isinstance(values, np.ndarray):
        return values.tolist()
    try:
        return list(values)
    except TypeError:
        raise InvalidInput(f"{what} must be a sequence, got {type(values).__name__} "
                           f"{values!r:.60}") from None


def normalise(x: np.ndarray) -> np.ndarray:
    """L2-normalise rows; an all-zero row is an error (cosine is undefined for it)."""
    peak = np.abs(x).max(axis=1)
    if not (peak > 0).all():
        bad = int(np.argmin(peak > 0))
        raise InvalidInput(f"vector {bad} is all zeros; cosine similarity needs a "
                           "non-zero vector")
    x = x / peak[:, None]  # scale to max 1 first: squares of tiny values underflow
    return x / np.linalg.norm(x, axis=1)[:, None]


def check_one_id(ident: Any, id_type: str | None, where: str) -> Id:
    """One id for lookup or deletion, of the index's id type."""
    value, kind = normalise_id(ident)
    if id_type is not None and kind != id_type:
        raise IdTypeMismatch(f"id {ident!r:.60} is {kind} but the ids of {where} are "
                             f"{id_type}")
    return value


def check_ids(ids: Any, n: int, id_type: str | None, next_auto: int, where: str
              ) -> tuple[list[Id], str, int]:
    """The ids of a batch of n rows -> (ids, their type, the next automatic id). None
    assigns consecutive ints; ids must be unique, all int or all str, of the index's type."""
    if ids is None:
        if id_type == "str":
            raise InvalidInput(f"{where} has str ids: pass ids= for every row")
        if next_auto + n > 2**63:  # the ids would not fit the index's int64 ids
            raise InvalidInput(f"{where}: {n} automatic ids from {next_auto} would pass "
                               f"2**63 - 1, the largest int id; pass ids= explicitly")
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
        raise IdTypeMismatch(f"ids are {kind} but the ids of {where} are {id_type}")
    if len(set(out)) != len(out):
        seen: set = set()
        dup = next(i for i in out if i in seen or seen.add(i))
        raise DuplicateId(f"id {dup!r:.60} appears twice in this batch; ids must be unique")
    if kind == "int":
        next_auto = max(next_auto, max(out) + 1) if max(out) + 1 < 2**63 else next_auto
    return out, kind, next_auto


def normalise_id(ident: Any) -> tuple[Id, str]:
    if isinstance(ident, (bool, np.bool_)):
        raise InvalidInput(f"an id must be int or str, got bool {ident!r}")
    if isinstance(ident, (int, np.integer)):
        value = int(ident)
        if not -2**63 <= value < 2**63:
            raise InvalidInput(f"int id {value} is outside the int64 range")
        return value, "int"
    if isinstance(ident, str):
        if len(ident.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise InvalidInput(f"str id of {len(ident)} characters exceeds {MAX_ID_BYTES} bytes")
        check_unicode(ident, "a str id")
        return ident, "str"
    raise InvalidInput(f"an id must be int or str, got {type(ident).__name__} {ident!r:.60}")


def check_texts(texts: Any, n: int | None, what: str = "texts") -> list[str] | None:
    """A list of n str (any length when n is None), each encodable as UTF-8. `what`: the
    argument's name in messages (texts, or the query)."""
    if texts is None:
        return None
    if isinstance(texts, str):
        raise InvalidInput(f"{what} must be a sequence of str, not a single str")
    texts = as_list(texts, what)
    if n is not None and len(texts) != n:
        raise InvalidInput(f"got {len(texts)} texts for {n} rows; give one text per row")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInput(f"{what}[{i}] is {type(t).__name__}, expected str")
        check_unicode(t, f"{what}[{i}]")
    return texts


def check_metadata(metadata: Any, n: int) -> list[dict | None] | None:
    if metadata is None:
        return None
    if isinstance(metadata, dict):
        raise InvalidInput("metadata must be a sequence of dicts (one per row), not one dict")
    metadata = as_list(metadata, "metadata")
    if len(metadata) != n:
        raise InvalidInput(f"got {len(metadata)} metadata entries for {n} rows")
    for i, m in enumerate(metadata):
        if m is None:
            continue
        if not isinstance(m, dict):
            raise InvalidInput(f"metadata[{i}] is {type(m).__name__}, expected dict or None")
        for key in m:
            check_field_name(key)
        check_json_value(m, f"metadata[{i}]")
    return metadata


def json_dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from None
