"""Validation of user input to the Index API: ids, vectors, texts, metadata.

Everything here raises an `InvalidInput` (or subclass) that names the offending value and
the fix, before anything is encoded or written.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import InvalidInput
from .paths import check_path  # noqa: F401 - re-exported: every argument check in one place
from .storage.columns import check_field_name

Id = int | str
MAX_ID_BYTES = 4096


def check_flag(value: Any, what: str) -> bool:
    """A yes/no option: True/False (NumPy's too) or 0/1."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))
                                               and value in (0, 1)):
        return bool(value)
    raise InvalidInput(f"{what} must be True or False, got {value!r:.60}")


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
        try:
            ident.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"str id {ident!r:.60} is not encodable as UTF-8") from None
        return ident, "str"
    raise InvalidInput(f"an id must be int or str, got {type(ident).__name__} {ident!r:.60}")


def check_texts(texts: Any, n: int) -> list[str] | None:
    if texts is None:
        return None
    if isinstance(texts, str):
        raise InvalidInput("texts must be a sequence of str, not a single str")
    texts = as_list(texts, "texts")
    if len(texts) != n:
        raise InvalidInput(f"got {len(texts)} texts for {n} rows; give one text per row")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInput(f"texts[{i}] is {type(t).__name__}, expected str")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"texts[{i}] is not encodable as UTF-8") from None
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
    return metadata


def json_dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from None
