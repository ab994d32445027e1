"""A real corpus every Python install carries offline: the documentation (docstrings) of the
standard library's modules, classes, functions and methods.

`stdlib_docs()` yields one record per documented object: id = qualified name, text = the
docstring, metadata = module and kind. `known_item_pairs()` makes a known-item retrieval task
from it: the query is an object's one-line summary, the target its documentation without
that line.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
import warnings
from collections.abc import Iterator

SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test",
        "lib2to3", "pydoc_data", "ensurepip", "venv", "xxlimited", "xxsubtype", "webbrowser"}


def _modules() -> list[str]:
    """Public stdlib modules and the public submodules of stdlib packages."""
    names = []
    for m in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        if m.name not in sys.stdlib_module_names or m.name.startswith("_") or m.name in SKIP:
            continue
        names.append(m.name)
        if m.ispkg:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pkg = importlib.import_module(m.name)
                subs = pkgutil.walk_packages(pkg.__path__, m.name + ".", onerror=lambda _: None)
                names += sorted(s.name for s in subs if not any(
                    part.startswith("_") or part in ("test", "tests") for part in
                    s.name.split(".")))
            except Exception:  # noqa: BLE001 - optional parts of the stdlib may be missing
                continue
    return names


def stdlib_docs(min_chars: int = 40) -> Iterator[dict]:
    """Records {"id", "text", "module", "kind"} in a deterministic order."""
    seen: set[str] = set()
    for name in _modules():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - some stdlib modules need optional C parts
            continue
        yield from _emit(name, module, "module", name, seen, min_chars)
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = getattr(module, attr, None)
            if getattr(obj, "__module__", None) != name:
                continue
            if inspect.isclass(obj):
                yield from _emit(f"{name}.{attr}", obj, "class", name, seen, min_chars)
                for meth in sorted(vars(obj)):
                    if meth.startswith("_"):
                        continue
                    member = vars(obj)[meth]
                    if callable(member):
                        yield from _emit(f"{name}.{attr}.{meth}", member, "method", name, seen,
                                         min_chars)
            elif callable(obj):
                yield from _emit(f"{name}.{attr}", obj, "function", name, seen, min_chars)


def _emit(qualname: str, obj, kind: str, module: str, seen: set, min_chars: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        doc = inspect.getdoc(obj)
    if not doc or len(doc) < min_chars or qualname in seen:
        return
    seen.add(qualname)
    yield {"id": qualname, "text": doc, "module": module.split(".")[0], "kind": kind}


def write_jsonl(path: str) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for rec in stdlib_docs():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def known_item_pairs(records: list[dict], min_body_words: int = 12) -> list[tuple[str, str, str]]:
    """(id, query = the summary paragraph, document = the rest) for records with a real
    body."""
    out = []
    for rec in records:
        summary, _, body = rec["text"].strip().partition("\n\n")
        summary, body = " ".join(summary.split()), body.strip()
        if len(summary.split()) >= 3 and len(body.split()) >= min_body_words:
            out.append((rec["id"], summary, body))
    return out
