"""Embedding a build's chunks on a Ray cluster (`pip install 'edgevec[ray]'`):
`edgevec build SOURCES -o FILE --ray [ADDRESS]`, or `edgevec.build.build(..., ray=ADDRESS)`.

Ray Data reads the sources on the cluster (`read_documents`: the driver lists the files,
Ray tasks read them with the local build's readers and passage splitting, in order). The
driver cuts the local build's chunks from that stream; a pool of Ray actors, each holding
one embedder (the driver's model, shipped once through the object store, so every worker
embeds with exactly the model the file will carry), embeds them; the driver stages each
chunk as it comes back, in order, and writes the file with the local build's writer. The
output is therefore the local build's (same chunks into the same model: same ids, texts,
metadata and codes, in the same row order), and resumable the same way: a rerun skips the
chunks already staged. A lost actor is restarted by Ray and its chunks retried; when that
fails too, the build stops with an error and a rerun continues from what was staged.

Why the driver cuts the chunks rather than letting Ray Data batch the rows for the
actors: a text's vector moves in its last bits with its batch neighbours (padding changes
the shapes ONNX Runtime multiplies), so only the local build's chunks give the local
build's codes, byte for byte. The texts pass through the driver either way, since it
writes them into the file.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import EdgevecError, InvalidInput, MissingExtra

try:
    import ray
    from ray.exceptions import RayActorError, RayError, RayTaskError
except ImportError:
    raise MissingExtra("edgevec.integrations.ray (edgevec build --ray, open_many(on_ray=))",
                       "ray") from None

__all__ = ["connect", "embed_chunks", "failure", "read_documents"]

# restarts of a lost actor, and retries of the chunks it held, before the build stops
MAX_RESTARTS = 2


class _Worker:
    """One embedder per actor, loaded once from the files the driver shipped."""

    def __init__(self, files: dict[str, bytes], identity: dict, threads: int) -> None:
        from ..embed import Embedder
        self.embedder = Embedder.from_files(files, threads=threads, source="<shipped model>")
        if not self.embedder.same_model(identity):
            raise EdgevecError("the model shipped to a Ray worker arrived damaged")

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        return self.embedder.encode(texts, batch_size=batch_size)


def connect(address: str | None, instead: str = "build without --ray") -> bool:
    """Join the cluster at `address` ("auto", "ray://host:port", "host:port"), or start a
    local Ray instance when None; True when this call started Ray (and so stops it).
    `instead`: what to do without Ray, for the error messages."""
    if ray.is_initialized():
        return False
    if address not in (None, "auto", "local"):
        _check_reachable(address, instead)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        raise EdgevecError(f"could not connect to {where} ({str(exc).splitlines()[0][:200]}); "
                           "check the address (ray status on the head node shows it), or "
                           f"{instead}") from None
    return True


def _check_reachable(address: str, instead: str, timeout: float = 5.0) -> None:
    """A TCP connection to a cluster's host:port (or ray://host:port) before Ray is asked:
    ray.init retries an unreachable address for minutes."""
    import socket
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInput(f"--ray address {address!r} is not host:port, ray://host:port or "
                           "auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise EdgevecError(f"could not reach the Ray cluster at {address} ({reason}); check "
                           f"the address (ray status on the head node shows it), or "
                           f"{instead}") from None


# files read per Ray Data task: enough to amortise a task (~ms), few enough to spread
FILES_PER_TASK = 16


def read_documents(sources: list[str], *, stats: Any = None, quiet: bool = False,
                   **options: Any) -> Iterator[Any]:
    """`edgevec.ingest.documents(sources, **options)`, read by Ray Data on the cluster:
    the same documents in the same order (Ray Data keeps the order of its input), and
    the same records skipped (counted in `stats`, warned about unless `quiet`). The
    driver lists the files (folders expanded); the tasks reading them need the same
    paths, so on a cluster the sources live on storage every node mounts."""
    import json

    try:
        from ray import data as ray_data
    except ImportError:  # Ray without its data extra (pandas, pyarrow)
        raise MissingExtra("edgevec build --ray (Ray Data reads the sources)",
                           "ray") from None

    from ..ingest import Doc, Stats, units
    stats = stats if stats is not None else Stats()
    files = units(sources)
    if not files:
        return
    context = ray_data.DataContext.get_current()
    kept = (context.execution_options.preserve_order, context.enable_progress_bars,
            logging.getLogger("ray.data").level)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # errors come back as exceptions
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the build draws its own progress line
    try:
        tasks = -(-len(files) // FILES_PER_TASK)
        ds = ray_data.from_items([{"kind": k, "path": p, "name": n} for k, p, n in files],
                                 override_num_blocks=tasks)
        # no CPU reserved: the embedding actors may hold every CPU, and reading is light
        ds = ds.flat_map(_read_unit, fn_kwargs={"options": options}, num_cpus=0)
        for row in ds.iter_rows():
            if row["skip"]:
                stats.skip(row["where"], row["text"], quiet)
                continue
            stats.documents += 1
            yield Doc(row["id"], row["text"], json.loads(row["meta"]))
    except RayError as exc:
        raise failure(exc, "a Ray Data task", "reading the sources", "check that every "
                      "node can read them (a path every node mounts)") from None
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = kept[:2]
        logging.getLogger("ray.data").setLevel(kept[2])


def _read_unit(unit: dict, options: dict) -> Iterator[dict]:
    """One file's documents as rows, and what was skipped in it (a row with skip=True,
    where it happened), streamed: Ray Data cuts the output into blocks as it comes, so a
    single large JSONL file is never held whole in a worker."""
    import json

    from ..ingest import Stats, read_unit
    stats = Stats()
    reported = 0
    for d in read_unit((unit["kind"], unit["path"], unit["name"]), stats=stats, quiet=True,
                       **options):
        for where, why in stats.skipped[reported:]:
            yield {"skip": True, "id": "", "text": why, "where": where, "meta": ""}
        reported = len(stats.skipped)
        yield {"skip": False, "id": d.id, "text": d.text, "where": "",
               "meta": json.dumps(d.metadata, ensure_ascii=False)}
    for where, why in stats.skipped[reported:]:
        yield {"skip": True, "id": "", "text": why, "where": where, "meta": ""}


def embed_chunks(chunks: Iterable[list], embedder: Any, *, address: str | None = None,
                 actors: int | None = None, threads_per_actor: int = 1,
                 batch_size: int = 32) -> Iterator[tuple[list, np.ndarray]]:
    """(chunk, its vectors) for each chunk of documents, in order, embedded by `actors`
    Ray actors (default: the cluster's CPUs / threads_per_actor) holding `embedder`'s
    model. At most two chunks per actor are in flight, so the driver holds a bounded
    amount of the corpus whatever its size."""
    if isinstance(threads_per_actor, bool) or not isinstance(threads_per_actor, int) or \
            threads_per_actor < 1:
        raise InvalidInput(f"threads_per_actor must be a positive int, got "
                           f"{threads_per_actor!r}")
    started = connect(address)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = actors if actors is not None else max(1, cpus // threads_per_actor)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInput(f"actors must be a positive int, got {actors!r}")
        remote = ray.remote(num_cpus=threads_per_actor, max_restarts=MAX_RESTARTS,
                            max_task_retries=MAX_RESTARTS)(_Worker)
        files = ray.put(embedder.files())  # kept referenced: a restarted actor reloads it
        token = uuid.uuid4().hex[:8]
        pool = [remote.options(name=f"edgevec-embed-{token}-{i}").remote(
            files, embedder.identity, threads_per_actor) for i in range(count)]
        window: deque = deque()
        n = 0
        for chunk in chunks:
            window.append((chunk, pool[n % count].embed.remote([d.text for d in chunk],
                                                               batch_size)))
            n += 1
            if len(window) >= 2 * count:
                yield _result(*window.popleft())
        while window:
            yield _result(*window.popleft())
    finally:
        if started:
            ray.shutdown()


def _result(chunk: list, ref: Any) -> tuple[list, np.ndarray]:
    try:
        return chunk, ray.get(ref)
    except RayError as exc:
        raise failure(exc, "a Ray worker", "embedding a chunk", "run the same build again "
                      "to continue from the staged chunks") from None


def failure(exc: Exception, who: str, doing: str, fix: str) -> EdgevecError:
    """The EdgevecError for a Ray call that failed: the remote side's own EdgevecError as
    it was raised, anything else in one line naming `who` failed `doing` and the `fix`."""
    if isinstance(exc, RayTaskError):  # the remote code raised
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        if isinstance(cause, EdgevecError):
            return cause
        return EdgevecError(f"{who} failed {doing}: {type(cause).__name__}: "
                            f"{str(cause).splitlines()[0][:200]}; {fix}")
    text = str(exc)
    if isinstance(exc, RayActorError) and "creation task" in text:
        last = [line.strip() for line in text.splitlines() if line.strip()][-1]
        return EdgevecError(f"{who} could not start: {last[:300]}")
    if isinstance(exc, RayActorError):
        return EdgevecError(f"{who} was lost {MAX_RESTARTS + 1} times while {doing}; {fix}")
    return EdgevecError(f"{who} failed {doing} ({text.splitlines()[0][:200]}); {fix}")
