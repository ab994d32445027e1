"""Read corpora as a stream of documents: folders of .txt/.md (split into passages),
JSONL and CSV files. Order is deterministic (sorted paths, file order), which lets an
interrupted build skip what it already staged."""

from __future__ import annotations

import csv
import json
import logging
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInput
from .paths import file_kind, open_regular
from .validate import MAX_NESTING, check_json_value, check_unicode

TEXT_SUFFIXES = (".txt", ".md", ".rst")
DEFAULT_MAX_WORDS = 180  # about 256 tokens of English for a MiniLM tokenizer


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    metadata: dict[str, Any]


@dataclass
class Stats:
    documents: int = 0
    files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str, why: str, quiet: bool = False) -> None:
        self.skipped.append((path, why))
        if not quiet:
            logging.getLogger("edgevec").warning("skipping %s: %s", path, why)


def split_passages(text: str, max_words: int = DEFAULT_MAX_WORDS) -> list[str]:
    """Paragraphs packed into passages of at most `max_words` words; a longer paragraph is
    cut at word boundaries."""
    out: list[str] = []
    current: list[str] = []
    count = 0
    for para in (p.strip() for p in text.replace("\r\n", "\n").split("\n\n")):
        if not para:
            continue
        words = para.split()
        while len(words) > max_words:
            if current:
                out.append("\n\n".join(current))
                current, count = [], 0
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if count + len(words) > max_words and current:
            out.append("\n\n".join(current))
            current, count = [], 0
        current.append(" ".join(words) if len(words) != len(para.split()) else para)
        count += len(words)
    if current:
        out.append("\n\n".join(current))
    return out


def _open(path: str, stats: Stats, quiet: bool, mode: str = "r", **kwargs):
    """The file opened for reading, or None: an unreadable file, or one that is not a
    regular file (a FIFO would hang the build), is counted and skipped like any other
    bad input."""
    try:
        return open_regular(path, "the source", mode, **kwargs)
    except OSError as exc:
        stats.skip(path, f"cannot read it ({exc.strerror})", quiet)
    except InvalidInput as exc:
        stats.skip(path, str(exc), quiet)
    return None


def _read_text(path: str, stats: Stats, quiet: bool) -> str | None:
    f = _open(path, stats, quiet, mode="rb")
    if f is None:
        return None
    with f:
        raw = f.read()
    if b"\x00" in raw[:8192]:
        stats.skip(path, "binary file", quiet)
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        stats.skip(path, f"not UTF-8 (byte {exc.start})", quiet)
        return None


def _text_files(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in sorted(filenames):
            if name.lower().endswith(TEXT_SUFFIXES):
                yield os.path.join(dirpath, name)


def _passages_of(path: str, rel: str, stats: Stats, max_words: int, quiet: bool
                 ) -> Iterator[Doc]:
    text = _read_text(path, stats, quiet)
    if text is None:
        return
    stats.files += 1
    for i, passage in enumerate(split_passages(text, max_words)):
        yield Doc(f"{rel}#{i}", passage, {"path": rel, "passage": i})


def _records(path: str, rows: Iterator[tuple[int, Any]], text_field: str,
             id_field: str | None, meta_fields: Sequence[str] | None, stats: Stats,
             quiet: bool) -> Iterator[Doc]:
    base = os.path.basename(path)
    for line, rec in rows:
        if not isinstance(rec, dict):
            stats.skip(f"{path}:{line}", "not an object", quiet)
            continue
        text = rec.get(text_field)
        if not isinstance(text, str) or not text.strip():
            stats.skip(f"{path}:{line}", f"no text in field {text_field!r}", quiet)
            continue
        used = id_field
        if id_field:
            ident = rec.get(id_field)
        elif rec.get("id") not in (None, ""):  # a field named "id" is the id, as everywhere
            ident, used = rec["id"], "id"
        else:
            ident = f"{base}:{line}"
        if ident is None or ident == "":
            stats.skip(f"{path}:{line}", f"no id in field {id_field!r}", quiet)
            continue
        keys = meta_fields if meta_fields is not None else [
            k for k in rec if k not in (text_field, used)]
        meta = {k: rec[k] for k in keys if k in rec and rec[k] is not None and rec[k] != ""}
        try:  # what add() would refuse for the whole batch: one record's problem
            check_unicode(text, "its text")
            check_unicode(str(ident), "its id")
            check_json_value(meta, "its metadata")
        except InvalidInput as exc:
            stats.skip(f"{path}:{line}", str(exc), quiet)
            continue
        yield Doc(str(ident), text, meta)


def _jsonl(path: str, stats: Stats, quiet: bool) -> Iterator[tuple[int, Any]]:
    f = _open(path, stats, quiet, mode="rb")
    if f is None:
        return
    with f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield n, json.loads(raw)
            except (UnicodeDecodeError, ValueError) as exc:
                stats.skip(f"{path}:{n}", f"not JSON ({str(exc)[:60]})", quiet)
            except RecursionError:
                stats.skip(f"{path}:{n}", f"nested too deep to parse (metadata nests at "
                           f"most {MAX_NESTING} levels)", quiet)


# csv refuses fields over 128 KB by default; a passage's text may be longer. The limit is
# process-wide, so it is raised only while a CSV file is read, then put back.
CSV_FIELD_LIMIT = 1 << 26


def _csv(path: str, stats: Stats, quiet: bool) -> Iterator[tuple[int, Any]]:
    f = _open(path, stats, quiet, newline="", encoding="utf-8")
    if f is None:
        return
    limit = csv.field_size_limit()
    reader = csv.DictReader(f)
    try:
        csv.field_size_limit(max(limit, CSV_FIELD_LIMIT))
        for n, row in enumerate(reader, 2):
            yield n, row
    except UnicodeDecodeError as exc:
        stats.skip(path, f"not UTF-8 (byte {exc.start})", quiet)
    except csv.Error as exc:  # the rest of a malformed file cannot be read reliably
        stats.skip(f"{path}:{reader.line_num}", f"malformed CSV ({exc}); the rest of the "
                   "file is skipped", quiet)
    finally:
        csv.field_size_limit(limit)
        f.close()


def units(sources: Sequence[str]) -> list[tuple[str, str, str]]:
    """The files `sources` name, in reading order, each as (kind, path, name in ids):
    folders expanded to their .txt/.md/.rst files (sorted, hidden folders skipped)."""
    if not sources:
        raise InvalidInput("no sources given: name folders of .txt/.md files, .jsonl or .csv")
    out = []
    for src in sources:
        if not os.path.exists(src):
            raise InvalidInput(f"{src}: no such file or folder")
        mode = os.stat(src).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise InvalidInput(f"{src} is {file_kind(mode)}: a source is a folder, .txt, .md, "
                               ".jsonl or .csv file (a FIFO would hang the build)")
        if os.path.isdir(src):
            out += [("text", path, os.path.relpath(path, src)) for path in _text_files(src)]
            continue
        lower = src.lower()
        if lower.endswith((".jsonl", ".ndjson")):
            out.append(("jsonl", src, src))
        elif lower.endswith(".csv"):
            out.append(("csv", src, src))
        elif lower.endswith(TEXT_SUFFIXES):
            out.append(("text", src, os.path.basename(src)))
        else:
            raise InvalidInput(f"{src}: unsupported source; use a folder, .txt, .md, .jsonl "
                               "or .csv")
    return out


def read_unit(unit: tuple[str, str, str], *, text_field: str = "text",
              id_field: str | None = None, meta_fields: Sequence[str] | None = None,
              max_words: int = DEFAULT_MAX_WORDS, stats: Stats | None = None,
              quiet: bool = False) -> Iterator[Doc]:
    """The documents of one of `units()`'s files (the options of `documents`)."""
    stats = stats if stats is not None else Stats()
    kind, path, name = unit
    if kind == "text":
        yield from _passages_of(path, name, stats, max_words, quiet)
        return
    stats.files += 1
    rows = _jsonl(path, stats, quiet) if kind == "jsonl" else _csv(path, stats, quiet)
    yield from _records(path, rows, text_field, id_field, meta_fields, stats, quiet)


def documents(sources: Sequence[str], *, text_field: str = "text", id_field: str | None = None,
              meta_fields: Sequence[str] | None = None, max_words: int = DEFAULT_MAX_WORDS,
              stats: Stats | None = None, quiet: bool = False) -> Iterator[Doc]:
    """Every document of `sources`, streamed, in a deterministic order. JSONL/CSV
    records: the text from `text_field`, the id from `id_field` (default: the record's
    "id" field when it has one, else "file:line"), the other fields as metadata."""
    stats = stats if stats is not None else Stats()
    for unit in units(sources):
        for doc in read_unit(unit, text_field=text_field, id_field=id_field,
                             meta_fields=meta_fields, max_words=max_words, stats=stats,
                             quiet=quiet):
            stats.documents += 1
            yield doc
