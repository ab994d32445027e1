"""The main job, run by `python3 dev.py demo`: build the default text model from its
published weights, index a real corpus that every Python install carries offline (the
documentation of the standard library), answer a few queries, print timings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

QUERIES = [
    "how do I parse a csv file",
    "read a file that is bigger than memory",
    "run a shell command and capture its output",
    "compare two dates and compute the number of days between them",
    "compress data with gzip",
    "make an HTTP request",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default=os.path.join(".cache", "demo"),
                    help="where the corpus and the index go (default: .cache/demo)")
    ap.add_argument("query", nargs="*", help="your own queries (default: a few examples)")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    os.environ.setdefault("EDGEVEC_MODELS_DIR", os.path.join(".cache", "models"))

    from . import open as open_index
    from .build import build
    from .corpus import write_jsonl
    from .embed import build_model

    t = time.perf_counter()
    path = build_model("minilm-l6")
    print(f"model: all-MiniLM-L6-v2, int8 weights, {path} ({time.perf_counter() - t:.1f} s)")

    corpus = os.path.join(args.workdir, "stdlib.jsonl")
    t = time.perf_counter()
    n = write_jsonl(corpus)
    print(f"corpus: {n} docstrings of the Python {sys.version.split()[0]} standard library "
          f"({time.perf_counter() - t:.1f} s)")

    index = os.path.join(args.workdir, "stdlib.edgevec")
    report = build([corpus], index, id_field="id", overwrite=True, quiet=True,
                   progress=sys.stderr.isatty(),  # minutes of embedding on a slow laptop
                   user_metadata={"corpus": "python stdlib docstrings"})
    print(report.summary())

    t0 = time.perf_counter()
    idx = open_index(index)
    t_open = time.perf_counter() - t0
    info = idx.info()
    print(f"opened in {t_open * 1e3:.2f} ms: {info['rows']} rows, {info['dim']}-d, "
          f"rescore depth m={info['rescore_m']}, {info['file_bytes'] / 1e6:.1f} MB "
          "(the model travels inside the file)")
    t = time.perf_counter()
    idx.search("warm up", k=1)  # loads the stored model and the compiled kernels
    print(f"first query (loads the stored model and the search kernels): "
          f"{(time.perf_counter() - t) * 1e3:.0f} ms")
    for q in args.query or QUERIES:
        t = time.perf_counter()
        res = idx.search(q, k=3)
        ms = (time.perf_counter() - t) * 1e3
        print(f"\n{q!r}  ({ms:.1f} ms: embed + search)")
        for hit in res:
            first = (hit.text or "").split("\n")[0][:80]
            print(f"   {hit.score:.3f}  {hit.id:<40} {first}")
    t = time.perf_counter()
    res = idx.search("parse a csv file", k=3, filter={"kind": "function"})
    ms = (time.perf_counter() - t) * 1e3
    print(f"\nwith filter {json.dumps({'kind': 'function'})} ({ms:.1f} ms): "
          + ", ".join(res.ids))
    idx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
