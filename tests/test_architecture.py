"""The package's imports point only downward through its layers, and never in a circle.

Layers, bottom up (shared/DESIGN.md): errors, paths and fileio; kernels; codecs; storage; embed and
the lexical analyzer and postings; the scans and their helpers (search, filters,
validate, results, cpu); the retrievers (the funnel, BM25); the funnel's calibration; the planner (query) and the batch encoder (batch), side by side; index; the
package facade; the app (cli, build, ingest, convert, corpus, demo). Every import counts, also those inside functions: a lazy
import still ties the modules together (embedder <-> models was one such circle).
"""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = [("edgevec.errors", 0), ("edgevec.paths", 0), ("edgevec.progress", 0), ("edgevec.fileio", 0), ("edgevec.kernels", 1), ("edgevec.codecs", 2),
          ("edgevec.storage", 3), ("edgevec.embed", 4), ("edgevec.lexical", 4), ("edgevec.search", 5),
          ("edgevec.filters", 5), ("edgevec.validate", 5), ("edgevec.results", 5),
          ("edgevec.cpu", 5), ("edgevec.funnel", 6), ("edgevec.lexical.bm25", 6), ("edgevec.fusion", 6), ("edgevec.calibration", 7),
          ("edgevec.query", 8), ("edgevec.batch", 8), ("edgevec.index", 9), ("edgevec.sets", 9.2), ("edgevec.integrations.ray", 9.3),
          ("edgevec.integrations.ray_shards", 9.4), ("edgevec.shards", 9.5), ("edgevec", 10),
          ("edgevec.cli", 11), ("edgevec.build", 11), ("edgevec.ingest", 9.1),
          ("edgevec.convert", 11), ("edgevec.staging", 11), ("edgevec.corpus", 11), ("edgevec.demo", 11),
          ("edgevec.__main__", 11), ("edgevec.integrations", 11)]


def modules() -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "edgevec")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name.removesuffix(".__init__")] = path
    return out


def imports_of(name: str, path: str, known: dict) -> set[str]:
    """The edgevec modules that module `name` imports, anywhere in its code."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    found = set()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:  # `from . import x` may name a module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def layer(name: str) -> int:
    best = max((p for p, _ in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def test_every_module_has_a_layer_and_imports_point_down():
    known = modules()
    graph = {m: imports_of(m, p, known) for m, p in known.items()}
    upward = [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a])
              if layer(b) > layer(a)]
    assert not upward, "imports pointing up a layer: " + "; ".join(upward)


def test_no_import_circles():
    known = modules()
    graph = {m: imports_of(m, p, known) for m, p in known.items()}
    circles, done = [], set()

    def walk(node: str, stack: list[str]) -> None:  # depth first; stack = the open path
        for nxt in sorted(graph[node]):
            if nxt in stack:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in done:
                walk(nxt, stack + [nxt])
        done.add(node)
    for m in sorted(graph):
        if m not in done:
            walk(m, [m])
    assert not circles, "import circles: " + "; ".join(circles)
