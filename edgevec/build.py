"""Build an index from a corpus: stream documents, embed them in chunks staged on disk
(mmap-ninja), then write the index file. An interrupted build (Ctrl-C, kill, power loss)
resumes from its staged chunks instead of embedding again.

Staging folder `OUTPUT.staging/`: `job.json` (what is being built) and one folder per chunk
(edgevec.staging): its vectors, ids, texts and metadata, fsync'd and checksummed before
its `done` marker is written. A resume embeds again exactly the chunks that are missing
or fail their checksums, so it gives the bytes of an uninterrupted build.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInput, os_errors_as_edgevec_errors
from .fileio import fsync_parent, replacing, write_file
from .paths import check_path, check_target
from .progress import Progress
from .ingest import DEFAULT_MAX_WORDS, Stats, documents
from .validate import check_k
from .staging import FORMAT, chunk_path, read_chunk, staged_chunks
from .staging import stage_chunk as _stage_chunk  # a module global: tests replace it

CHUNK_DOCS = 512
WRITE_ROWS = 65_536


@dataclass
class BuildReport:
    path: str
    documents: int
    skipped: int
    resumed_from: int
    seconds_embedding: float
    seconds_writing: float
    bytes: int

    def summary(self) -> str:
        total = self.seconds_embedding + self.seconds_writing
        rate = self.documents / total if total else 0.0
        resumed = f", resumed after {self.resumed_from} staged" if self.resumed_from else ""
        split = (f"; embedding {self.seconds_embedding:.1f} s, writing "
                 f"{self.seconds_writing:.1f} s" if self.seconds_embedding else "")
        return (f"built {self.path}: {self.documents} passages{resumed}, {self.skipped} "
                f"skipped, {self.bytes / 1e6:.1f} MB, {total:.1f} s ({rate:,.0f} "
                f"passages/s{split})")


# staging, reading staged chunks and the final rename touch the disk outside the writer
@os_errors_as_edgevec_errors(
    "building an index", "choose an output in a writable folder with free space and run the "
    "same command again: the build resumes from what it staged")
def build(sources: Sequence[str], output: str, *, model: str = "minilm-l6",
          text_field: str = "text", id_field: str | None = None,
          meta_fields: Sequence[str] | None = None, max_words: int = DEFAULT_MAX_WORDS,
          overwrite: bool = False, batch_size: int = 32, store_f16: bool = False,
          progress: bool = False, quiet: bool = False,
          user_metadata: dict[str, Any] | None = None,
          lexical_only: bool = False, ray: str | bool | None = None,
          actors: int | None = None, threads_per_actor: int = 1,
          codecs: Any = None, pca: int | None = None,
          dims: int | None = None) -> BuildReport:
    """Build `output` from `sources` with the text model `model` (see module docstring).
    `progress` draws a progress line on stderr (the CLI turns it on on a terminal);
    `quiet` silences the warnings about skipped files. `lexical_only`: no model and no
    vectors, BM25 postings alone (see `_build_lexical`). `ray`: embed on a Ray cluster
    (True: a local Ray instance, or the cluster's address; edgevec[ray]) with `actors`
    actors of `threads_per_actor` threads: the same file as a local build (see
    edgevec.integrations.ray). `codecs`: how vectors are stored (Index.create's presets:
    "balanced", "exact", "compact"; checked before any embedding); `pca`, `dims`: a stored
    projection (Index.create)."""
    from .batch import codec_set, projection_meta
    from .embed import Embedder
    from .index import Index
    output = check_path(output, "output")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [check_path(src, "source") for src in sources]
    max_words = check_k(max_words, "max_words")
    if codecs is not None and not lexical_only:
        codec_set(codecs, bool(store_f16))
    if (pca is not None or dims is not None) and lexical_only:
        raise InvalidInput("a lexical-only build keeps no vectors to project: leave out "
                           "--pca and --dims")
    if ray is not None and ray is not False:
        # the extra is checked before any work
        from .integrations.ray import embed_chunks, read_documents
    if lexical_only:
        if ray:
            raise InvalidInput("a lexical-only build embeds nothing: leave out --ray")
        return _build_lexical(sources, output, text_field=text_field, id_field=id_field,
                              meta_fields=meta_fields, max_words=max_words,
                              overwrite=overwrite, quiet=quiet, user_metadata=user_metadata)
    emb = Embedder.load(model)
    projection_meta(emb.dim, pca, dims)  # checked before any embedding or staging
    staging = output + ".staging"
    job = {"sources": [os.path.abspath(s) for s in sources], "model": model,
           "text_field": text_field, "id_field": id_field,
           "meta_fields": list(meta_fields) if meta_fields is not None else None,
           "max_words": max_words, "chunk_docs": CHUNK_DOCS, "staging": FORMAT}
    job_path = os.path.join(staging, "job.json")
    if os.path.isdir(staging):
        try:
            with open(job_path, encoding="utf-8") as f:
                same = json.load(f) == job
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(staging)  # staged for another job: start over
    check_target(output, overwrite or os.path.isdir(staging))  # resuming: it may exist
    replace = overwrite or os.path.lexists(output)  # a resumed --overwrite build
    if not os.path.isdir(staging):
        os.makedirs(staging)
        fsync_parent(staging)
    if not os.path.exists(job_path):
        write_file(job_path, json.dumps(job).encode())

    stats = Stats()
    total = sum(1 for _ in documents(sources, text_field=text_field, id_field=id_field,
                                     meta_fields=meta_fields, max_words=max_words,
                                     stats=Stats(), quiet=True)) if progress else None
    trusted = staged_chunks(staging)  # {chunk number: documents}; damaged ones removed
    resumed = sum(trusted.values())
    t0 = time.perf_counter()
    read = documents if ray is None or ray is False else read_documents
    stream = read(sources, text_field=text_field, id_field=id_field, meta_fields=meta_fields,
                  max_words=max_words, stats=stats, quiet=quiet)
    order: list[int] = []  # every chunk of the corpus, in order
    numbers: deque[int] = deque()  # those handed to the embedder, in order

    def chunks():  # read lazily: a Ray build reads once it has joined the cluster
        chunk: list = []
        for doc in stream:
            chunk.append(doc)
            if len(chunk) == CHUNK_DOCS:
                yield from cut(chunk)
                chunk = []
        if chunk:
            yield from cut(chunk)

    def cut(chunk: list):
        order.append(len(order))
        if order[-1] not in trusted:  # else staged already: skipped without embedding
            numbers.append(order[-1])
            yield chunk
    if ray is None or ray is False:
        embedded = ((c, emb.encode([d.text for d in c], batch_size=batch_size))
                    for c in chunks())
    else:
        embedded = embed_chunks(chunks(), emb, address=None if ray is True else ray,
                                actors=actors, threads_per_actor=threads_per_actor,
                                batch_size=batch_size)
    staged = resumed
    with Progress("embedded", total, "passages", enabled=progress, start=resumed) as shown:
        for chunk, vectors in embedded:
            _stage_chunk(chunk_path(staging, numbers.popleft()), vectors, chunk)
            staged += len(chunk)
            shown.update(len(chunk))
    t_embed = time.perf_counter() - t0
    if staged == 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise _empty_corpus(sources, stats)

    t1 = time.perf_counter()
    # the new name is durable (replacing: fsync of file and folder) before the chunks go
    with replacing(output, overwrite=replace) as tmp, \
            Index.create(tmp, model=emb, store_f16=store_f16, user_metadata=user_metadata,
                         codecs=codecs, pca=pca, dims=dims) as idx:
        buf: list = []
        rows = 0
        for number in order:
            buf.append(read_chunk(chunk_path(staging, number)))
            rows += len(buf[-1][1])
            if rows >= WRITE_ROWS:
                _add_chunks(idx, buf)
                buf, rows = [], 0
        if buf:
            _add_chunks(idx, buf)
    shutil.rmtree(staging, ignore_errors=True)
    return BuildReport(output, staged, len(stats.skipped), resumed, t_embed,
                       time.perf_counter() - t1, os.path.getsize(output))


def _empty_corpus(sources: Sequence[str], stats: Stats) -> InvalidInput:
    return InvalidInput(f"the corpus is empty: no passages in {', '.join(sources)} "
                        f"({len(stats.skipped)} files or records skipped)")


def _build_lexical(sources: Sequence[str], output: str, *, text_field: str,
                   id_field: str | None, meta_fields: Sequence[str] | None, max_words: int,
                   overwrite: bool, quiet: bool, user_metadata: dict[str, Any] | None
                   ) -> BuildReport:
    """A lexical-only index: documents streamed straight into a temporary index file in
    batches of WRITE_ROWS (nothing to stage: analysis is cheap to redo), published as
    `output` once complete (fileio.replacing), so a failed or interrupted build leaves no
    half-built file and any old one untouched."""
    from .index import Index
    stats = Stats()
    t0 = time.perf_counter()
    count = 0
    with replacing(output, overwrite=overwrite) as tmp, \
            Index.create(tmp, lexical_only=True, user_metadata=user_metadata) as idx:
        docs: list = []
        for doc in documents(sources, text_field=text_field, id_field=id_field,
                             meta_fields=meta_fields, max_words=max_words, stats=stats,
                             quiet=quiet):
            docs.append(doc)
            if len(docs) == WRITE_ROWS:
                count += _add_docs(idx, docs)
                docs = []
        if docs:
            count += _add_docs(idx, docs)
        if count == 0:
            raise _empty_corpus(sources, stats)
    return BuildReport(output, count, len(stats.skipped), 0, 0.0, time.perf_counter() - t0,
                       os.path.getsize(output))


def _add_docs(idx, docs: list) -> int:
    idx.add(ids=[d.id for d in docs], texts=[d.text for d in docs],
            metadata=[d.metadata for d in docs])
    return len(docs)


def _add_chunks(idx, chunks: list) -> None:
    vectors = np.concatenate([c[0] for c in chunks])
    ids = [i for c in chunks for i in c[1]]
    texts = [t for c in chunks for t in c[2]]
    meta = [m for c in chunks for m in c[3]]
    idx.add(vectors, ids=ids, texts=texts, metadata=meta)
