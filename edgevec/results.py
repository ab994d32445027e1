"""Search results: frozen value objects over NumPy arrays."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Hit:
    """One result: id, score, stored text and metadata (None when absent)."""

    id: int | str
    score: float
    text: str | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Results:
    """The results of one query, best first (score descending, ties by lower row)."""

    ids: tuple
    scores: np.ndarray
    texts: tuple
    metadata: tuple
    rows: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Hit:
        return Hit(self.ids[i], float(self.scores[i]), self.texts[i], self.metadata[i])

    def __iter__(self) -> Iterator[Hit]:
        return (self[i] for i in range(len(self)))

    def to_list(self) -> list[dict[str, Any]]:
        return [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
                for h in self]


@dataclass(frozen=True)
class BatchResults:
    """The results of a batch of queries: one `Results` per query, in query order."""

    results: tuple

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> Results:
        return self.results[i]

    def __iter__(self) -> Iterator[Results]:
        return iter(self.results)

    @property
    def ids(self) -> list[tuple]:
        return [r.ids for r in self.results]

    @property
    def scores(self) -> list[np.ndarray]:
        return [r.scores for r in self.results]

    @property
    def texts(self) -> list[tuple]:
        return [r.texts for r in self.results]

    @property
    def metadata(self) -> list[tuple]:
        return [r.metadata for r in self.results]

    def to_list(self) -> list[list[dict[str, Any]]]:
        return [r.to_list() for r in self.results]
