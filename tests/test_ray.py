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


def test_a_stopped_ray_build_resumes_from_its_staged_chunks(tmp_path, corpus, minilm,
                                                            local_ray, monkeypatch):
    """The driver stops after one chunk (Ctrl-C): the rerun embeds only the rest, and the
    file is still the local build's."""
    import edgevec.integrations.ray as R
    real = R.embed_chunks

    def one_then_stop(*args, **kwargs):
        for n, item in enumerate(real(*args, **kwargs)):
            if n == 1:
                raise KeyboardInterrupt
            yield item
    monkeypatch.setattr(R, "embed_chunks", one_then_stop)
    out = str(tmp_path / "ray.edgevec")
    with pytest.raises(KeyboardInterrupt):
        build([corpus], out, quiet=True, ray=True, actors=2)
    assert not os.path.exists(out) and os.path.isdir(out + ".staging")
    monkeypatch.setattr(R, "embed_chunks", real)
    report = build([corpus], out, quiet=True, ray=True, actors=2)
    assert report.resumed_from == CHUNK_DOCS
    build([corpus], str(tmp_path / "local.edgevec"), quiet=True)
    assert (tmp_path / "ray.edgevec").read_bytes() == (tmp_path / "local.edgevec").read_bytes()
