"""Builds on a Ray cluster (edgevec.integrations.ray) on a local Ray instance (2 CPUs, no
network): the same file as a local build, a killed actor restarted without losing a
chunk, clear errors for a bad address or a worker that fails."""

from __future__ import annotations

import json
import os

import pytest

import edgevec
from edgevec.build import CHUNK_DOCS, build
from helpers import import_error_without

ray = pytest.importorskip("ray", reason="edgevec[ray] is part of the dev extras; "
                                        "this environment lacks it")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    words = ["zip", "csv", "bread", "river", "stone"]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(CHUNK_DOCS * 2 + 77):  # three chunks, the last one short
            text = f"passage {i}: " + " ".join(words[(i + j) % 5] for j in range(i % 9 + 1))
            f.write(json.dumps({"id": f"d{i}", "text": text, "n": i}) + "\n")
    return str(path)


def test_a_ray_build_is_the_local_build(tmp_path, corpus, minilm, local_ray):
    local = build([corpus], str(tmp_path / "local.edgevec"), quiet=True)
    on_ray = build([corpus], str(tmp_path / "ray.edgevec"), quiet=True, ray=True, actors=2)
    assert on_ray.documents == local.documents == CHUNK_DOCS * 2 + 77
    # same chunks into the same model, written by the same writer: the same bytes
    assert (tmp_path / "ray.edgevec").read_bytes() == (tmp_path / "local.edgevec").read_bytes()
    edgevec.verify(tmp_path / "ray.edgevec")
    assert not os.path.exists(tmp_path / "ray.edgevec.staging")
    from edgevec import cli
    assert cli.main(["build", corpus, "-o", str(tmp_path / "cli.edgevec"), "--ray",
                     "--actors", "1", "--quiet"]) == 0
    assert (tmp_path / "cli.edgevec").read_bytes() == (tmp_path / "local.edgevec").read_bytes()


def test_a_killed_actor_is_restarted_and_no_chunk_is_lost(tmp_path, corpus, minilm,
                                                          local_ray):
    from edgevec.embed import Embedder
    from edgevec.ingest import documents
    from edgevec.integrations.ray import embed_chunks
    docs = list(documents([corpus], quiet=True))
    chunks = [docs[a:a + 100] for a in range(0, len(docs), 100)]
    emb = Embedder.load("minilm-l6")
    got = []
    for n, (chunk, vectors) in enumerate(embed_chunks(iter(chunks), emb, actors=2)):
        got.append((chunk, vectors))
        if n == 0:  # one result in: kill an actor that still holds chunks
            name = sorted(a for a in ray.util.list_named_actors()
                          if a.startswith("edgevec-embed-"))[0]
            ray.kill(ray.get_actor(name), no_restart=False)
    assert [c for c, _ in got] == chunks
    for chunk, vectors in got[:3]:
        want = emb.encode([d.text for d in chunk])
        assert (vectors == want).all()  # the same vectors as embedding here


def test_bad_addresses_and_failing_workers_are_one_clear_error(tmp_path, corpus, minilm,
                                                               local_ray):
    from edgevec.embed import Embedder
    from edgevec.integrations.ray import embed_chunks
    ray.shutdown()  # an address is only used when this process has not joined Ray yet
    try:
        with pytest.raises(edgevec.EdgevecError, match="could not reach the Ray cluster at "
                                                       "127.0.0.1:1"):
            build([corpus], str(tmp_path / "x.edgevec"), quiet=True, ray="127.0.0.1:1")
        with pytest.raises(edgevec.InvalidInput, match="not host:port"):
            build([corpus], str(tmp_path / "x.edgevec"), quiet=True, ray="nonsense")
        assert not os.path.exists(tmp_path / "x.edgevec")
    finally:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    emb = Embedder.load("minilm-l6")

    class Liar:  # says it is another model than the files it ships
        def files(self):
            return emb.files()
        identity = dict(emb.identity, fingerprint="0" * 64)
    from edgevec.ingest import documents
    chunk = list(documents([corpus], quiet=True))[:3]
    with pytest.raises(edgevec.EdgevecError, match="arrived damaged"):
        list(embed_chunks(iter([chunk]), Liar(), actors=1))
    with pytest.raises(edgevec.InvalidInput, match="threads_per_actor"):
        list(embed_chunks(iter([]), emb, threads_per_actor=0))
    with pytest.raises(edgevec.InvalidInput, match="lexical-only build embeds nothing"):
        build([corpus], str(tmp_path / "y.edgevec"), lexical_only=True, ray=True)


def test_importing_without_the_extra_names_it():
    out = import_error_without("edgevec.integrations.ray", "ray")
    assert out.startswith("MissingExtra") and "pip install 'edgevec[ray]'" in out


def _stopping_after(embed_chunks, chunks: int):
    """`embed_chunks` as a driver that is stopped (Ctrl-C) once `chunks` came back."""
    def stopping(*args, **kwargs):
        for n, item in enumerate(embed_chunks(*args, **kwargs)):
            if n == chunks:
                raise KeyboardInterrupt
            yield item
    return stopping

def test_a_stopped_ray_build_resumes_from_its_staged_chunks(tmp_path, corpus, minilm,
                                                            local_ray, monkeypatch):
    """The driver stops after one chunk (Ctrl-C): the rerun embeds only the rest, and the
    file is still the local build's."""
    import edgevec.integrations.ray as R
    real = R.embed_chunks
    monkeypatch.setattr(R, "embed_chunks", _stopping_after(real, 1))
    out = str(tmp_path / "ray.edgevec")
    with pytest.raises(KeyboardInterrupt):
        build([corpus], out, quiet=True, ray=True, actors=2)
    assert not os.path.exists(out) and os.path.isdir(out + ".staging")
    monkeypatch.setattr(R, "embed_chunks", real)
    report = build([corpus], out, quiet=True, ray=True, actors=2)
    assert report.resumed_from == CHUNK_DOCS
    build([corpus], str(tmp_path / "local.edgevec"), quiet=True)
    assert (tmp_path / "ray.edgevec").read_bytes() == (tmp_path / "local.edgevec").read_bytes()



def test_a_ray_build_re_embeds_a_damaged_staged_chunk(tmp_path, corpus, minilm, local_ray,
                                                      monkeypatch):
    """A Ray build stages through the local build's code: after a stop with two chunks
    staged, chunk 0's vectors zeroed under its intact marker (a power loss), the rerun on
    Ray embeds chunks 0 and 2 (not 1) and writes the local build's bytes."""
    import edgevec.integrations.ray as R
    from edgevec import staging
    real = R.embed_chunks
    monkeypatch.setattr(R, "embed_chunks", _stopping_after(real, 2))
    out = str(tmp_path / "ray.edgevec")
    with pytest.raises(KeyboardInterrupt):
        build([corpus], out, quiet=True, ray=True, actors=2)
    data = os.path.join(staging.chunk_path(out + ".staging", 0), "vectors", "data.ninja")
    with open(data, "r+b") as f:
        f.write(bytes(os.path.getsize(data)))
    sent = []

    def counting(chunks, *args, **kwargs):
        return real((sent.append(len(c)) or c for c in chunks), *args, **kwargs)
    monkeypatch.setattr(R, "embed_chunks", counting)
    report = build([corpus], out, quiet=True, ray=True, actors=2)
    assert report.resumed_from == CHUNK_DOCS and sent == [CHUNK_DOCS, 77]
    build([corpus], str(tmp_path / "local.edgevec"), quiet=True)
    assert (tmp_path / "ray.edgevec").read_bytes() == (tmp_path / "local.edgevec").read_bytes()

def _every_search(many, q, texts):
    """The same searches in every mode, with and without filters, single and batched."""
    out = []
    for options in ({"mode": "lexical"}, {"mode": "hybrid"}, {"mode": "hybrid", "alpha": 0.4},
                    {"mode": "dense"}, {"mode": "dense", "exact": True},
                    {"mode": "hybrid", "exact": True}):
        for flt in (None, {"g": 1}, {"g": {"$in": [0, 2]}}):
            for i in range(len(q)):
                query = texts[i] if options["mode"] == "lexical" else q[i]
                text = texts[i] if options["mode"] == "hybrid" else None
                out.append(many.search(query, k=8, filter=flt, text=text, **options))
    out.append(many.search(q, k=4, text=texts, mode="hybrid"))
    out.append(many.search(texts, k=5, mode="lexical", min_score=1.0))
    return out


def test_a_shard_set_served_on_ray_answers_like_the_local_set(shards_and_whole, local_ray):
    from edgevec.integrations.ray_shards import ServedShards
    from helpers import batch_vectors
    paths, _ = shards_and_whole
    q = batch_vectors(99, 4, 16)
    texts = ["zip csv", "river stone light", "alpha", "nothing here"]
    with edgevec.open_many(paths, on_ray=True) as served, edgevec.open_many(paths) as local:
        assert isinstance(served, ServedShards) and len(served) == len(local) == 130
        got, want = _every_search(served, q, texts), _every_search(local, q, texts)
        assert got == want  # ids, texts, metadata, score bits, global rows, ranks
        assert not any(r.partial for r in got)
        assert served.get("s3-0") == local.get("s3-0") and "s2-3" not in served
        assert served.contains(["s1-0", "s2-3", "x"]).tolist() == [True, False, False]
        assert served.ids(filter={"g": 1}) == local.ids(filter={"g": 1})
        info = served.info()
        assert info["served_on"] == "ray" and info["rows"] == 130 and info["deleted"] == 2
        with pytest.raises(edgevec.UnknownId, match="none of the 3 shards"):
            served.get("s2-3")
        with pytest.raises(edgevec.InvalidInput, match="unknown filter operator|\\$near"):
            served.search(q[0], filter={"g": {"$near": 1}})  # the shard's own error
        with pytest.raises(edgevec.DimensionMismatch):
            served.search(q[0][:8])


def test_a_late_shard_is_an_error_or_a_flagged_partial_result(shards_and_whole, local_ray):
    import threading

    import numpy as np
    paths, _ = shards_and_whole
    q = np.ones(16, dtype=np.float32)
    with edgevec.open_many(paths, on_ray=True) as served, \
            edgevec.open_many([paths[0], paths[2]]) as others:
        served.search(q, text="zip csv", mode="hybrid")  # warm: no first-call costs
        # shard 1's actor is busy until it is killed (close): its answers never come
        served._actors[1].__ray_call__.remote(lambda self: threading.Event().wait())
        served.timeout = 5.0
        with pytest.raises(edgevec.ShardTimeout, match="shard-1.edgevec did not answer "
                                                       "within 5.0 s"):
            served.search("zip csv", mode="lexical")
        served.partial = True
        for got, want in ((served.search("zip csv", k=10, mode="lexical"),
                           others.search("zip csv", k=10, mode="lexical")),
                          (served.search(q, k=10, exact=True),
                           others.search(q, k=10, exact=True))):
            # flagged, naming the late shard; BM25 statistics are the answering shards'
            assert got.partial and got.missing == (str(paths[1]),)
            assert got.ids == want.ids and got.scores.tolist() == want.scores.tolist()
        with pytest.raises(edgevec.ShardTimeout, match="shard-1.edgevec"):
            served.ids()  # no partial answer to a lookup


def test_served_shards_embed_text_and_refuse_bad_sets(tmp_path, shards_and_whole,
                                                      text_shards, local_ray):
    texts = text_shards
    with edgevec.open_many(texts, on_ray=True) as served, edgevec.open_many(texts) as local:
        for mode in ("hybrid", "dense", "lexical"):  # the query embedded with the shards' model
            assert served.search("reading a zip archive", k=3, mode=mode) == \
                local.search("reading a zip archive", k=3, mode=mode)
    paths, _ = shards_and_whole
    with pytest.raises(edgevec.IndexNotFound, match="missing.edgevec"):
        edgevec.open_many([paths[0], tmp_path / "missing.edgevec"], on_ray=True)
    with pytest.raises(edgevec.InvalidInput, match="its dim differs"):
        edgevec.open_many([paths[0], texts[0]], on_ray=True)
    with pytest.raises(edgevec.InvalidInput, match="served on Ray"):
        edgevec.open_many(paths, timeout=3)
    with pytest.raises(edgevec.InvalidInput, match="timeout"):
        edgevec.open_many(paths, on_ray=True, timeout=-1)


def test_cli_searches_a_set_served_on_ray(tmp_path, shards_and_whole, local_ray, capsys):
    from edgevec import cli
    paths, whole = shards_and_whole
    manifest = edgevec.write_manifest(tmp_path / "set.shards", paths)
    assert cli.main(["search", manifest, "river stone", "--ray", "--mode", "lexical",
                     "--timeout", "60", "--json"]) == 0
    served = json.loads(capsys.readouterr().out)
    assert cli.main(["search", str(whole), "river stone", "--mode", "lexical", "--json"]) == 0
    assert served["results"] == json.loads(capsys.readouterr().out)["results"]
    assert served["missing"] == []


def test_ray_data_reads_the_sources_like_the_local_readers(tmp_path, corpus, local_ray):
    """Folders split into passages, JSONL with bad lines, CSV: the same documents in the
    same order, and the same records skipped."""
    from edgevec.ingest import Stats, documents
    from edgevec.integrations.ray import FILES_PER_TASK, read_documents
    folder = tmp_path / "notes"
    for i in range(FILES_PER_TASK + 5):  # more files than one task reads
        sub = folder / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"n{i:02d}.md").write_text(("word " * 150 + "\n\n") * (i % 4 + 1))
    (folder / "skip.bin.md").write_bytes(b"\x00\x01binary")
    table = tmp_path / "t.csv"
    table.write_text("id,text,lang\nc1,first row,en\nc2,,en\nc3,third row,fr\n")
    with open(corpus, "a", encoding="utf-8") as f:
        f.write("{not json\n" + json.dumps({"id": "late", "text": "after the bad line"}) + "\n")
    sources = [str(folder), corpus, str(table)]
    local, remote = Stats(), Stats()
    want = list(documents(sources, stats=local, quiet=True, max_words=100))
    got = list(read_documents(sources, stats=remote, quiet=True, max_words=100))
    assert got == want and remote.documents == len(want) > CHUNK_DOCS
    assert remote.skipped == local.skipped and len(local.skipped) == 3
    with pytest.raises(edgevec.InvalidInput, match="no such file"):
        list(read_documents([str(tmp_path / "absent.jsonl")]))
