"""Search results and stored rows: frozen value objects over NumPy arrays."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Record:
    """One stored row (`Index.get`): its id, its vector (float32, decoded from float16 when
    stored, else from int8), its text and metadata (None when the row has none). Equal
    when all four are (the vector compared by value); unhashable."""

    id: int | str
    vector: np.ndarray
    text: str | None
    metadata: dict[str, Any] | None

    def __eq__(self, other: object) -> bool:
        # the generated __eq__ compared the vectors with ==, whose truth value raises
        if not isinstance(other, Record):
            return NotImplemented
        return (self.id == other.id and self.text == other.text
                and self.metadata == other.metadata
                and np.array_equal(self.vector, other.vector))

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Hit:
    """One result: id, score, stored text and metadata (None when absent)."""

    id: int | str
    score: float
    text: str | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True, eq=False)
class Results:
    """The results of one query, best first (score descending, ties by lower row).

    `ranks` (hybrid search only): int32 [len, 2], each hit's 1-based rank in the dense and
    in the lexical list (0 = not in that list), to see which retriever found it.
    `missing`: the shards of a served shard set that did not answer in time when the
    search allowed a partial result (then `partial` is True); empty otherwise.
    Equal when they hold the same hits in the same order (arrays compared by value);
    unhashable, like the dicts of metadata they hold."""

    ids: tuple
    scores: np.ndarray
    texts: tuple
    metadata: tuple
    rows: np.ndarray
    ranks: np.ndarray | None = None
    missing: tuple = ()

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def __eq__(self, other: object) -> bool:
        # the generated __eq__ compared arrays with ==, whose truth value raises
        if not isinstance(other, Results):
            return NotImplemented
        return (self.ids == other.ids and self.texts == other.texts
                and self.metadata == other.metadata
                and np.array_equal(self.scores, other.scores)
                and np.array_equal(self.rows, other.rows)
                and _same_ranks(self.ranks, other.ranks) and self.missing == other.missing)

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Hit:
        return Hit(self.ids[i], float(self.scores[i]), self.texts[i], self.metadata[i])

    def __iter__(self) -> Iterator[Hit]:
        return (self[i] for i in range(len(self)))

    def to_list(self) -> list[dict[str, Any]]:
        """One dict per hit; in hybrid search with "ranks": {"dense": r, "lexical": r}
        (1-based, None when that retriever did not find it)."""
        out = [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
               for h in self]
        if self.ranks is not None:
            for hit, (d, lx) in zip(out, self.ranks.tolist()):
                hit["ranks"] = {"dense": d or None, "lexical": lx or None}
        return out


@dataclass(frozen=True, eq=False)
class BatchResults:
    """The results of a batch of nq queries, array-shaped like usearch's BatchMatches.

    `scores` float32[nq, k] and `rows` int64[nq, k] hold each query's results best first;
    query i has `counts[i]` of them (fewer than k when fewer rows match or `min_score`
    drops some), and the places after those are padding (NaN score, row -1). `ids`,
    `texts` and `metadata` hold one tuple per query, `counts[i]` long. `batch[i]` is
    query i's `Results`."""

    ids: tuple
    scores: np.ndarray
    texts: tuple
    metadata: tuple
    rows: np.ndarray
    counts: np.ndarray
    ranks: np.ndarray | None = None  # int32 [nq, k, 2] in hybrid search, see Results
    missing: tuple = ()  # shards that did not answer, see Results

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BatchResults):
            return NotImplemented
        return (self.ids == other.ids and self.texts == other.texts
                and self.metadata == other.metadata
                and np.array_equal(self.counts, other.counts)
                and np.array_equal(self.rows, other.rows)
                and np.array_equal(self.scores, other.scores, equal_nan=True)
                and _same_ranks(self.ranks, other.ranks) and self.missing == other.missing)

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Results:
        i = range(len(self))[i]  # negative indexes; IndexError past the end
        n = int(self.counts[i])
        return Results(self.ids[i], self.scores[i, :n], self.texts[i], self.metadata[i],
                       self.rows[i, :n], None if self.ranks is None else self.ranks[i, :n],
                       self.missing)

    def __iter__(self) -> Iterator[Results]:
        return (self[i] for i in range(len(self)))

    @property
    def results(self) -> tuple:
        """One `Results` per query (the shape of earlier versions)."""
        return tuple(self)

    def to_list(self) -> list[list[dict[str, Any]]]:
        return [r.to_list() for r in self]


def _same_ranks(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None
                                         and np.array_equal(a, b))
