"""Metadata columns: each scalar metadata field of a segment becomes a typed column so
that filters run as vectorised comparisons over memory-mapped arrays.

Types per field and segment: bool, int (int64), float (float64) or str (dictionary
encoded: int32 codes into a string table, -1 for missing). Ints and floats mixed in
one field become float. None or an absent key is "missing". A field holding lists or
objects is kept only in the per-row JSON and is not filterable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .strings import encode_table

MAX_FIELD_NAME = 256


def _scalar_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


def column_type(name: str, values: Sequence[Any]) -> str | None:
    """The column type for a field's values (None entries are missing), or None if the
    field holds non-scalar values. Raises InvalidInput for str mixed with numbers."""
    kinds = {_scalar_kind(v) for v in values if v is not None}
    if not kinds or None in kinds:
        return None
    if "int" in kinds:
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63:
                raise InvalidInput(f"metadata field {name!r} holds {v}, outside the int64 "
                                   "range; store it as str or float")
    if "float" in kinds and any(isinstance(v, float) and math.isnan(v) for v in values):
        raise InvalidInput(f"metadata field {name!r} holds NaN; use None for a missing value")
    if kinds == {"int", "float"}:
        return "float"
    if len(kinds) > 1:
        raise InvalidInput(
            f"metadata field {name!r} mixes {' and '.join(sorted(kinds))} values in one batch; "
            "a filterable field needs one type (convert the values, e.g. all to str)")
    return kinds.pop()


def encode_columns(metadata: Sequence[dict | None], fields: dict[str, str]
                   ) -> tuple[list[tuple[str, str, str, np.ndarray]], dict[str, str]]:
    """Encode every scalar field of `metadata` as a typed column.

    `fields` is the index's schema (field -> column type) so far: a field keeps the type
    it was first seen with (ints are accepted into a float field). Returns the columns
    [(field, ctype, part, array)] and the schema entries this batch adds.
    """
    names: dict[str, None] = {}
    for row in metadata:
        if row:
            names.update(dict.fromkeys(row))
    out: list[tuple[str, str, str, np.ndarray]] = []
    added: dict[str, str] = {}
    for name in sorted(names):
        values = [None if not row else row.get(name) for row in metadata]
        ctype = column_type(name, values)
        if ctype is None:
            continue
        declared = fields.get(name)
        if declared is not None and declared != ctype:
            if not (declared == "float" and ctype == "int"):
                raise InvalidInput(
                    f"metadata field {name!r} holds {declared} values in this index; this "
                    f"batch gives {ctype} values. Convert them to {declared} (a field keeps "
                    "the type it was first added with)")
            ctype = "float"
        elif declared is None:
            added[name] = ctype
        out += encode_column(name, ctype, values)
    return out, added


def encode_column(name: str, ctype: str, values: Sequence[Any]
                  ) -> list[tuple[str, str, str, np.ndarray]]:
    """The parts of one column of type `ctype` holding `values` (None = missing)."""
    if ctype == "str":
        uniq = sorted({v for v in values if v is not None})
        lookup = {s: i for i, s in enumerate(uniq)}
        codes = np.fromiter((-1 if v is None else lookup[v] for v in values), dtype="<i4",
                            count=len(values))
        offsets, blob = encode_table(uniq)
        return [(name, ctype, "codes", codes), (name, ctype, "dict.offsets", offsets),
                (name, ctype, "dict.bytes", blob)]
    valid = np.fromiter((v is not None for v in values), dtype=np.uint8, count=len(values))
    dtype = {"int": "<i8", "float": "<f8", "bool": "|u1"}[ctype]
    fill = math.nan if ctype == "float" else 0
    values_arr = np.array([fill if v is None else v for v in values], dtype=dtype)
    return [(name, ctype, "values", values_arr), (name, ctype, "valid", valid)]


def check_field_name(name: Any) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_FIELD_NAME:
        raise InvalidInput(f"metadata keys must be non-empty str of at most {MAX_FIELD_NAME} "
                           f"characters; got {name!r:.80}")
