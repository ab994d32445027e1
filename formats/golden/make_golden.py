"""Write the golden .edgevec files and their expected contents.

    python formats/golden/make_golden.py [OUTDIR]      (default: this folder)

The committed copies are those of the newest format version; v1.0/ keeps the files of
format 1.0, which every later reader must still open and search.

Seeded and exact: every vector component is a small dyadic rational (k / 8), so norms,
normalisation, calibration and quantisation are exact in float32 on any CPU, and the
files come out byte for byte the same everywhere. tests/test_golden.py rebuilds them
and compares bytes, then opens the committed copies and checks the expected rows.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

import edgevec


def _vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return (rng.integers(-8, 9, size=(n, dim)) / 8).astype(np.float32)


def _cosine_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    # exactly 4 non-zero components of +-1/2 per row: the norm is exactly 1
    x = np.zeros((n, dim), dtype=np.float32)
    for i in range(n):
        cols = rng.choice(dim, size=4, replace=False)
        x[i, cols] = rng.choice([-0.5, 0.5], size=4)
    return x


def build(outdir: str) -> dict[str, str]:
    """Build every golden file in `outdir`; return {name: path}."""
    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(20261122)
    paths = {}

    p = os.path.join(outdir, "empty.edgevec")
    edgevec.Index.create(p, dim=8, overwrite=True).close()
    paths["empty"] = p

    p = os.path.join(outdir, "int-ids.edgevec")
    with edgevec.Index.create(p, dim=8, metric="dot", overwrite=True) as idx:
        idx.add(_vectors(rng, 7, 8))
    paths["int-ids"] = p

    p = os.path.join(outdir, "str-ids.edgevec")
    ids = ["alpha", "beta", "γάμμα", "数据", "emoji-🙂", "", "x" * 70]
    texts = ["first text", "second", "τρίτο", "第四个文本", "🙂🙃", "sixth", "seventh"]
    meta = [{"lang": "en", "year": 2001, "score": 0.5, "ok": True, "tags": ["a", "b"]},
            {"lang": "fr", "year": 2002, "score": 1.25, "ok": False},
            {"lang": "el", "year": None, "score": 2, "ok": True},
            None,
            {"lang": "en", "nested": {"k": [1, 2]}},
            {},
            {"lang": "zh", "year": 2007, "score": -0.75, "ok": False}]
    with edgevec.Index.create(p, dim=72, store_f16=True, overwrite=True,
                              user_metadata={"corpus": "golden"}) as idx:
        idx.add(_cosine_vectors(rng, 7, 72), ids=ids, texts=texts, metadata=meta)
        idx.add(_cosine_vectors(rng, 3, 72), ids=["delta", "epsilon", "zeta"],
                texts=["d", "e", "z"], metadata=[{"lang": "de", "year": 2010}, None,
                                                 {"score": 3}])
        idx.delete(["beta", "epsilon"])
    paths["str-ids"] = p

    p2 = os.path.join(outdir, "compacted.edgevec")
    with open(p, "rb") as src, open(p2, "wb") as dst:
        dst.write(src.read())
    with edgevec.open(p2, writable=True) as idx:
        idx.compact()
    paths["compacted"] = p2

    # 1.1: BM25 postings (lex.* sections) next to the vectors, two segments, a deletion
    p = os.path.join(outdir, "lexical.edgevec")
    with edgevec.Index.create(p, dim=8, lexical=True, overwrite=True) as idx:
        idx.add(_cosine_vectors(rng, 4, 8), ids=["a", "b", "c", "d"],
                texts=["The quick brown fox", "a lazy dog, the dog", "中文分词", ""])
        idx.add(_cosine_vectors(rng, 2, 8), ids=["e", "f"],
                texts=["quick quick DOG", "Straße 42"])
        idx.delete(["b"])
    paths["lexical"] = p

    # 1.2: a lexical-only index (dim 0, no vector sections), texts and metadata
    p = os.path.join(outdir, "lexical-only.edgevec")
    with edgevec.Index.create(p, lexical_only=True, overwrite=True) as idx:
        idx.add(texts=["The quick brown fox", "a lazy dog", "中文分词 quick"],
                metadata=[{"n": 1}, None, {"n": 3}])
        idx.add(texts=["quick quick DOG", ""])
        idx.delete([1])
    paths["lexical-only"] = p

    # 1.3: a compact index (one transform code per row). Its rows are columns of a
    # Hadamard matrix times exact scales: uncorrelated, mean 0, so the fitted rotation
    # is exactly the identity (LAPACK's answer on a diagonal covariance) and the file
    # comes out the same on every CPU.
    p = os.path.join(outdir, "compact.edgevec")
    h = np.ones((1, 1))
    while len(h) < 1024:
        h = np.block([[h, h], [h, -h]])
    scales = np.array([2, 1.5, 1, 0.75, 0.5, 0.375, 0.25, 0.125])
    with edgevec.Index.create(p, dim=8, metric="dot", codecs="compact", overwrite=True) as idx:
        idx.add((h[:, 1:9] * scales).astype(np.float32),
                metadata=[{"even": i % 2 == 0} for i in range(1024)])
        idx.add(_vectors(rng, 3, 8), texts=["x", "y", "z"])
        idx.delete([0, 1025])
    paths["compact"] = p

    # 1.4: float8 rescoring codes behind sign bits, of the first 4 of 8 dimensions
    # (a Matryoshka cut: L2-normalised again, exactly, as each row's cut holds 0-4
    # values of +-1/2)
    p = os.path.join(outdir, "prefix-float8.edgevec")
    with edgevec.Index.create(p, dim=8, dims=4, codecs=["binary", "f8e4m3"],
                              overwrite=True) as idx:
        idx.add(_cosine_vectors(rng, 6, 8) + np.eye(8, dtype=np.float32)[:6] * 0.5,
                ids=["a", "b", "c", "d", "e", "f"])
        idx.add(_cosine_vectors(rng, 2, 8), ids=["g", "h"])
        idx.delete(["b"])
    paths["prefix-float8"] = p

    # 1.4: a PCA to 4 of 8 dimensions (the projection section; E5M2 codes): 256 rows of
    # the Hadamard design, whose fitted directions are exactly axes 0-3, turned by the
    # seeded rotation (codecs.random_rotation: einsum sums, no LAPACK); fewer than 1,000
    # rows, so no funnel depth is measured (that would rank with BLAS)
    p = os.path.join(outdir, "pca.edgevec")
    with edgevec.Index.create(p, dim=8, metric="dot", pca=4, codecs=["binary", "f8e5m2"],
                              overwrite=True) as idx:
        idx.add((h[:256, 1:9] * scales).astype(np.float32))
        idx.add(_vectors(rng, 2, 8))
    paths["pca"] = p
    return paths


def expected(path: str) -> dict:
    """Everything a reader must return for a golden file, as plain JSON."""
    with edgevec.open(path) as idx:
        rows = []
        for ident in idx.ids():
            rec = idx.get(ident)
            rows.append({"id": rec.id, "text": rec.text, "metadata": rec.metadata,
                         "vector": [float(v) for v in rec.vector]})
        info = idx.info()
        return {"info": {k: info[k] for k in ("format_version", "generation", "dim", "metric",
                                              "rows", "stored_rows", "deleted", "segments",
                                              "id_type", "codecs", "fields", "user",
                                              "committed_bytes")},
                "rows": rows}


def main(argv: list[str]) -> int:
    outdir = argv[0] if argv else os.path.dirname(os.path.abspath(__file__))
    for name, path in build(outdir).items():
        with open(os.path.join(outdir, name + ".expected.json"), "w", encoding="utf-8") as f:
            want = expected(path)
            json.dump(want, f, ensure_ascii=False, sort_keys=True,
                      indent=1 if len(want["rows"]) < 100 else None)  # compact: 1,025 rows
            f.write("\n")
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
