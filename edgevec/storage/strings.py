"""String tables (offsets + UTF-8 bytes) and id keys.

A string table of n strings is two sections: `offsets`, n + 1 little-endian uint64
byte offsets starting at 0 and never decreasing, and `bytes`, the concatenated UTF-8
of every string. Reading string i checks only offsets i and i + 1, so a damaged
table raises `StringTableError` when touched; `check_table` walks it whole (verify).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..errors import StringTableError


def encode_table(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return (offsets uint64 [n + 1], bytes uint8 [total]) for `strings`."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype="<u8")
    if encoded:
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return offsets, blob


class StringTable:
    """Read-only view of a string table; `path`/`offset` locate it for error messages."""

    __slots__ = ("offsets", "data", "path", "where")

    def __init__(self, offsets: np.ndarray, data: np.ndarray, *, path=None,
                 where: int | None = None) -> None:
        self.offsets = offsets
        self.data = data
        self.path = path
        self.where = where

    def __len__(self) -> int:
        return max(len(self.offsets) - 1, 0)

    def __getitem__(self, i: int) -> str:
        return self.get(i)

    def _bad(self, message: str) -> StringTableError:
        return StringTableError(message, path=self.path, offset=self.where)

    def get(self, i: int) -> str:
        a, b = self.get_bytes_range(i)
        try:
            return bytes(self.data[a:b]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._bad(f"string {i} is not valid UTF-8 ({exc.reason})") from None

    def get_many(self, indexes: np.ndarray) -> list[str]:
        """Strings `indexes` (int64, each in [0, len)), as get() reads them one by one
        (the same checks and errors) at a fraction of its cost per string: what a search
        pays to read its hits' ids, texts and metadata."""
        idx = np.asarray(indexes, dtype=np.int64)
        starts = self.offsets[idx].tolist()
        ends = self.offsets[idx + 1].tolist()
        data, size = self.data, len(self.data)
        out = []
        for i, a, b in zip(idx.tolist(), starts, ends):
            if not a <= b <= size:
                self.get_bytes_range(i)  # raises the error that says so
            try:
                out.append(data[a:b].tobytes().decode("utf-8"))
            except UnicodeDecodeError:
                self.get(i)  # raises the error that says so
        return out

    def get_bytes_range(self, i: int) -> tuple[int, int]:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        if not a <= b <= len(self.data):
            raise self._bad(f"string {i} spans bytes [{a}, {b}) of a {len(self.data)}-byte "
                            "table; the string table is damaged")
        return a, b

    def all(self) -> list[str]:
        self.check()
        raw = bytes(self.data)
        offs = self.offsets.tolist()
        return [raw[offs[i]:offs[i + 1]].decode("utf-8") for i in range(len(self))]

    def check(self) -> None:
        """Verify the whole table: offsets start at 0, never decrease, end at the byte count."""
        offs = self.offsets
        if len(offs) == 0:
            raise self._bad("a string table needs at least one offset")
        if int(offs[0]) != 0 or int(offs[-1]) != len(self.data):
            raise self._bad(f"string table offsets run from {int(offs[0])} to {int(offs[-1])}, "
                            f"expected 0 to {len(self.data)}")
        if len(offs) > 1 and bool(np.any(offs[1:] < offs[:-1])):
            bad = int(np.argmax(offs[1:] < offs[:-1]))
            raise self._bad(f"string table offsets decrease at string {bad}")
        try:
            bytes(self.data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._bad(f"string table bytes are not valid UTF-8 at byte {exc.start}") \
                from None


# --- id keys ------------------------------------------------------------------------------
# Each segment stores `idkeys`, the sorted 64-bit keys of its ids, and `idrows`, the local
# row of each key. Looking an id up is a binary search per segment on the memory map: no
# dictionary is built at open. An int id's key is its two's-complement bit pattern; a str
# id's key is the first 8 bytes of BLAKE2b of its UTF-8, read little-endian. Distinct str ids
# may share a key, so a match is confirmed against the stored id.


def str_key(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def id_keys(ids: np.ndarray | Sequence, id_type: str) -> np.ndarray:
    if id_type == "int":
        return np.asarray(ids, dtype="<i8").view("<u8")
    return np.fromiter((str_key(s) for s in ids), dtype="<u8", count=len(ids))


def sorted_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (keys sorted, local rows uint32 in key order); ties keep row order."""
    order = np.argsort(keys, kind="stable")
    return keys[order].astype("<u8"), order.astype("<u4")
