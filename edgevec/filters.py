"""Metadata filters -> row masks, evaluated on the typed columns of each segment.

A filter is a dict:
    {"lang": "en"}                             equality (scalar value)
    {"lang": {"$in": ["en", "fr"]}}            $eq $ne $in $nin
    {"year": {"$gte": 2000, "$lt": 2010}}      $gt $gte $lt $lte (int and float fields)
    {"tags": {"$exists": true}}                present / missing
    {"$and": [f, ...]}, {"$or": [f, ...]}, {"$not": f}
Several keys in one dict are combined with "and". A missing value matches only $ne, $nin
and {"$exists": false}. Unknown fields, unknown operators, values of the wrong type, keys
that are not str and filters nested deeper than validate.MAX_NESTING (64) levels of $and,
$or and $not are errors, found before any scan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInput
from .validate import MAX_NESTING, check_unicode
from .storage.reader import Snapshot

OPS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")
RANGE = ("$gt", "$gte", "$lt", "$lte")


def _check_value(field: str, ctype: str, op: str, value: Any) -> None:
    ok = {"str": lambda v: isinstance(v, str),
          "bool": lambda v: isinstance(v, bool),
          "int": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}[ctype]
    if op in RANGE and ctype not in ("int", "float"):
        raise InvalidInput(f"filter {field!r}: {op} needs a numeric field; {field!r} holds "
                           f"{ctype} values")
    values = value if op in ("$in", "$nin") else [value]
    if op in ("$in", "$nin") and not isinstance(value, (list, tuple)):
        raise InvalidInput(f"filter {field!r}: {op} takes a list, got {value!r:.60}")
    for v in values:
        if not ok(v):
            raise InvalidInput(f"filter {field!r}: {v!r:.60} is {type(v).__name__}, but the "
                               f"field holds {ctype} values")
        if isinstance(v, str):
            check_unicode(v, f"filter {field!r}: the value {v!r:.60}")
        if isinstance(v, float) and v != v:
            raise InvalidInput(f"filter {field!r}: NaN matches nothing; filter with $exists "
                               "for missing values")
        if ctype == "float" and isinstance(v, int) and float(v) != v:
            raise InvalidInput(f"filter {field!r}: {v} cannot be compared exactly with the "
                               "field's float64 values (beyond 2**53); pass a float")


def _int64_exact(v: int | float) -> bool:
    """Whether some int64 equals v exactly (2019.5 and 2**70 match no int64 row)."""
    if isinstance(v, float) and not v.is_integer():
        return False
    return -2**63 <= v < 2**63


def validate(node: Any, fields: dict[str, str], depth: int = 1) -> None:
    """Raise InvalidInput for anything a scan could not evaluate. `depth`: how deep
    `node` sits in the whole filter (at most MAX_NESTING: checked before going deeper, so
    no filter can exhaust the stack here or in the evaluation)."""
    if depth > MAX_NESTING:
        raise InvalidInput(f"the filter nests deeper than {MAX_NESTING} levels of $and, $or "
                           "and $not; write it flatter (several keys in one dict are "
                           "combined with and)")
    if not isinstance(node, dict) or not node:
        raise InvalidInput(f"a filter must be a non-empty dict, got {node!r:.80}")
    for key, value in node.items():
        if not isinstance(key, str):
            raise InvalidInput(f"a filter key must be a str (a field name or $and $or $not), "
                               f"got {type(key).__name__} {key!r:.40}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidInput(f"{key} takes a non-empty list of filters")
            for sub in value:
                validate(sub, fields, depth + 1)
        elif key == "$not":
            validate(value, fields, depth + 1)
        elif key.startswith("$"):
            raise InvalidInput(f"unknown filter operator {key!r}; use one of $and $or $not "
                               f"or, under a field, {' '.join(OPS)}")
        else:
            if key not in fields:
                known = ", ".join(sorted(fields)) or "none"
                raise InvalidInput(f"unknown filter field {key!r}; filterable fields of this "
                                   f"index: {known}")
            ops = value if isinstance(value, dict) else {"$eq": value}
            if not ops:
                raise InvalidInput(f"filter {key!r}: empty condition")
            for op, v in ops.items():
                if not isinstance(op, str) or op not in OPS:
                    raise InvalidInput(f"filter {key!r}: unknown operator {op!r}; use one of "
                                       f"{' '.join(OPS)}")
                if op == "$exists":
                    if not isinstance(v, bool):
                        raise InvalidInput(f"filter {key!r}: $exists takes true or false")
                    continue
                _check_value(key, fields[key], op, v)


class _SegmentColumns:
    def __init__(self, snap: Snapshot, seg: int) -> None:
        self.snap, self.seg = snap, seg
        self.n = snap.segments[seg].rows
        self._dicts: dict[str, dict[str, int]] = {}

    def codes_of(self, field: str, col) -> dict[str, int]:
        if field not in self._dicts:
            self._dicts[field] = {s: i for i, s in enumerate(col.dictionary().all())}
        return self._dicts[field]

    def compare(self, field: str, op: str, value: Any) -> np.ndarray:
        if op in ("$ne", "$nin"):  # rows without a value match, in every segment
            return ~self.compare(field, "$eq" if op == "$ne" else "$in", value)
        col = self.snap.column(self.seg, field)
        if op == "$exists":
            present = col.present() if col is not None else np.zeros(self.n, bool)
            return present if value else ~present
        if col is None:
            return np.zeros(self.n, bool)
        if col.ctype == "str":
            codes = col.array("codes")
            lookup = self.codes_of(field, col)
            wanted = [lookup[v] for v in (value if op == "$in" else [value]) if v in lookup]
            return np.isin(codes, wanted) if wanted else np.zeros(self.n, bool)
        values = col.array("values")
        valid = col.array("valid").astype(bool)
        if op == "$in":
            # the listed values as the column's dtype, keeping only those a row can equal:
            # casting 2019.5 to int64 used to match 2019, and 2**70 overflowed
            wanted = ([int(v) for v in value if _int64_exact(v)] if col.ctype == "int"
                      else [float(v) for v in value])
            out = (np.isin(values, np.array(wanted, dtype=values.dtype)) if wanted
                   else np.zeros(self.n, bool))
        elif op == "$eq":
            out = values == value
        else:
            out = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less,
                   "$lte": np.less_equal}[op](values, value)
        return out & valid


def _evaluate(node: dict, cols: _SegmentColumns) -> np.ndarray:
    mask = np.ones(cols.n, bool)
    for key, value in node.items():
        if key == "$and":
            for sub in value:
                mask &= _evaluate(sub, cols)
        elif key == "$or":
            any_ = np.zeros(cols.n, bool)
            for sub in value:
                any_ |= _evaluate(sub, cols)
            mask &= any_
        elif key == "$not":
            mask &= ~_evaluate(value, cols)
        else:
            ops = value if isinstance(value, dict) else {"$eq": value}
            for op, v in ops.items():
                mask &= cols.compare(key, op, v)
    return mask


def segment_masks(snap: Snapshot, node: dict) -> list[np.ndarray]:
    """One bool mask per segment: True where the row matches `node`."""
    validate(node, snap.meta["fields"])
    return [_evaluate(node, _SegmentColumns(snap, g))
            for g in range(len(snap.segments))]
