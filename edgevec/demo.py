"""The main job, run by `python3 dev.py demo`.

Today it exercises the single-file format on a real corpus that every Python install
carries offline: the docstrings of the standard library. It stores them with seeded
placeholder vectors (text embedding arrives with the embedder), reopens the file, looks
rows up, deletes, compacts and verifies, printing timings.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import tempfile
import time
import warnings

import numpy as np

import edgevec


def stdlib_docstrings(limit: int | None = None) -> list[tuple[str, str]]:
    """(qualified name, docstring) of public stdlib modules, classes and functions."""
    out: list[tuple[str, str]] = []
    names = sorted(m.name for m in pkgutil.iter_modules() if not m.name.startswith("_")
                   and m.name in sys.stdlib_module_names)
    for name in names:
        if name in ("antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - some stdlib modules need optional C parts
            continue
        if module.__doc__:
            out.append((name, module.__doc__.strip()))
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = getattr(module, attr, None)
                doc = getattr(obj, "__doc__", None)
            if callable(obj) and getattr(obj, "__module__", None) == name and doc:
                out.append((f"{name}.{attr}", doc.strip()))
        if limit and len(out) >= limit:
            break
    return out[:limit] if limit else out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-o", "--output", help="index file (default: a temporary file)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    docs = stdlib_docstrings()
    print(f"corpus: {len(docs)} standard-library docstrings ({time.perf_counter() - t0:.1f} s)")
    path = args.output or os.path.join(tempfile.mkdtemp(), "stdlib.edgevec")
    ids = [name for name, _ in docs]
    texts = [doc for _, doc in docs]
    meta = [{"module": name.split(".")[0], "kind": "module" if "." not in name else "member"}
            for name in ids]
    vectors = np.random.default_rng(0).normal(size=(len(docs), 384)).astype(np.float32)

    t = time.perf_counter()
    with edgevec.Index.create(path, dim=384, overwrite=True,
                              user_metadata={"corpus": "python stdlib docstrings"}) as idx:
        idx.add(vectors, ids=ids, texts=texts, metadata=meta)
    build = time.perf_counter() - t
    t = time.perf_counter()
    idx = edgevec.open(path)
    opened = time.perf_counter() - t
    t = time.perf_counter()
    rec = idx.get("json.dumps")
    got = time.perf_counter() - t
    print(f"built {path}: {len(idx)} rows, {os.path.getsize(path) / 1e6:.2f} MB "
          f"in {build * 1e3:.0f} ms")
    print(f"open {opened * 1e3:.2f} ms; get('json.dumps') {got * 1e3:.2f} ms:")
    print("   ", rec.text.splitlines()[0], rec.metadata)
    idx.close()
    with edgevec.open(path, writable=True) as w:
        t = time.perf_counter()
        w.delete([i for i in ids if i.startswith("email.")])
        deleted = time.perf_counter() - t
        t = time.perf_counter()
        sizes = w.compact()
        compacted = time.perf_counter() - t
    print(f"delete email.* {deleted * 1e3:.1f} ms; compact {compacted * 1e3:.0f} ms "
          f"({sizes['bytes_before'] / 1e6:.2f} -> {sizes['bytes_after'] / 1e6:.2f} MB)")
    t = time.perf_counter()
    report = edgevec.verify(path)
    print(f"verify {(time.perf_counter() - t) * 1e3:.0f} ms: {report['rows']} rows, "
          f"{report['bytes_checked'] / 1e6:.2f} MB checked, ok")
    print("search arrives with the kernels and the embedder issues")
    return 0


if __name__ == "__main__":
    sys.exit(main())
