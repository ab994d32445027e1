"""The LangChain adapter (edgevec.integrations.langchain) against LangChain's own standard
vector-store suite (langchain-tests), and what the suite does not cover: the file's own
model, hybrid search, filters, MMR, reopening, errors."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import VectorStoreIntegrationTests

import edgevec
from helpers import import_error_without
from edgevec.integrations.langchain import EdgevecVectorStore


class TestStandardSuite(VectorStoreIntegrationTests):
    """Every test of the standard class runs: sync and async, get_by_ids included."""

    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = EdgevecVectorStore(tmp_path / "lc.edgevec", self.get_embeddings())
        yield store
        store.close()


DOCS = [("paris", "Paris is the capital and largest city of France.", {"lang": "en", "n": 1}),
        ("berlin", "Berlin is the capital of Germany.", {"lang": "en", "n": 2}),
        ("zip", "The zipfile module reads and writes ZIP archives.", {"lang": "en", "n": 3}),
        ("csv", "The csv module reads comma separated values files.", {"lang": "en", "n": 4}),
        ("madrid", "Madrid es la capital de España.", {"lang": "es", "n": 5})]


@pytest.fixture()
def model_store(tmp_path, minilm):
    """A store that embeds with the model stored in its file (no Embeddings object)."""
    store = EdgevecVectorStore.from_texts([d[1] for d in DOCS], metadatas=[d[2] for d in DOCS],
                                          ids=[d[0] for d in DOCS], path=tmp_path / "m.edgevec")
    yield store
    store.close()


def test_the_files_own_model_hybrid_modes_filters_and_retriever(model_store):
    hits = model_store.similarity_search("capital of France", k=2)
    assert hits[0].id == "paris" and hits[0].metadata == {"lang": "en", "n": 1}
    for mode in ("dense", "lexical", "hybrid"):
        assert model_store.similarity_search("zip archives", k=1, mode=mode)[0].id == "zip"
    assert [d.id for d in model_store.similarity_search("capital", k=5, filter={"lang": "es"})
            ] == ["madrid"]
    assert {d.id for d in model_store.similarity_search(
        "capital", k=5, filter={"n": {"$gte": 4}}, mode="dense")} == {"madrid", "csv"}
    retriever = model_store.as_retriever(search_kwargs={"k": 1, "mode": "lexical"})
    assert [d.id for d in retriever.invoke("comma separated values")] == ["csv"]
    scored = model_store.similarity_search_with_relevance_scores("capital of Germany", k=5)
    assert scored[0][0].id == "berlin" and all(0 <= s <= 1 for _, s in scored)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
    for mode in ("hybrid", "lexical"):
        scored = model_store.similarity_search_with_relevance_scores("capital", k=5, mode=mode)
        assert all(0 <= s <= 1 for _, s in scored)
    threshold = model_store.as_retriever(search_type="similarity_score_threshold",
                                         search_kwargs={"score_threshold": 0.8, "k": 5})
    assert "berlin" in [d.id for d in threshold.invoke("Berlin is the capital of Germany")]


def test_mmr_picks_relevant_and_diverse_documents(model_store):
    model_store.add_texts(["Paris is the capital of France."], ids=["paris-2"],
                          metadatas=[{"lang": "en", "n": 6}])
    plain = [d.id for d in model_store.similarity_search("capital of France", k=2,
                                                         mode="dense")]
    assert set(plain) == {"paris", "paris-2"}  # near duplicates come first by similarity
    mmr = [d.id for d in model_store.max_marginal_relevance_search(
        "capital of France", k=2, fetch_k=5, lambda_mult=0.3)]
    assert mmr[0] in ("paris", "paris-2") and mmr[1] not in ("paris", "paris-2")
    assert model_store.max_marginal_relevance_search("capital", k=2, filter={"lang": "es"}
                                                     )[0].id == "madrid"


def test_reopening_and_wrong_use_are_clear_errors(tmp_path, model_store, minilm):
    path = tmp_path / "m.edgevec"
    before = [d.id for d in model_store.similarity_search("zip archives", k=3)]
    model_store.close()
    with EdgevecVectorStore(path) as again:
        assert [d.id for d in again.similarity_search("zip archives", k=3)] == before
        with pytest.raises(edgevec.InvalidInput, match="unknown search options"):
            again.similarity_search("zip", k=1, fetch=3)
        with pytest.raises(edgevec.InvalidInput, match="one of each per text"):
            again.add_texts(["a", "b"], ids=["x"])
        again.add_texts(["first", "second"], ids=["dup", "dup"])  # an id twice: the last wins
        assert [d.page_content for d in again.get_by_ids(["dup"])] == ["second"]
    fake = TestStandardSuite.get_embeddings()
    with pytest.raises(edgevec.InvalidInput, match="leave out embedding="):
        EdgevecVectorStore(path, fake)
    own = tmp_path / "own.edgevec"
    with EdgevecVectorStore(own, fake) as store:
        store.add_texts(["x"])
    with pytest.raises(edgevec.InvalidInput, match="pass embedding="):
        EdgevecVectorStore(own)
    with EdgevecVectorStore(path, read_only=True) as shipped:  # e.g. inside an app bundle
        assert shipped.similarity_search("zip archives", k=1)[0].id == "zip"
        with EdgevecVectorStore(path, read_only=True) as second:  # readers do not lock
            assert second.get_by_ids(["csv"])[0].id == "csv"
        with pytest.raises(edgevec.InvalidInput, match="read_only"):
            shipped.add_texts(["more"])
        with pytest.raises(edgevec.InvalidInput, match="read_only"):
            shipped.delete(["zip"])
    with pytest.raises(edgevec.InvalidInput, match="no index file"):
        EdgevecVectorStore(tmp_path / "missing.edgevec", read_only=True)
    with pytest.raises(edgevec.InvalidInput, match="needs path="):
        EdgevecVectorStore.from_texts(["x"], fake)


def test_your_own_embeddings_get_hybrid_search_too(tmp_path):
    """With any Embeddings the file keeps BM25 postings of the texts: a text query is
    embedded by your model and its words searched by BM25 (hybrid)."""
    fake = TestStandardSuite.get_embeddings()
    with EdgevecVectorStore(tmp_path / "own.edgevec", fake) as store:
        assert store.index is None and store.similarity_search("x") == []  # no file yet
        store.add_documents([Document(page_content=d[1], metadata=d[2], id=d[0]) for d in DOCS])
        assert store.similarity_search("zipfile ZIP archives", k=1, mode="lexical")[0].id == "zip"
        hybrid = store.similarity_search_with_score("zipfile ZIP archives", k=5)
        assert hybrid[0][0].id == "zip"  # random vectors, but BM25 ranks it first
        assert store.similarity_search_by_vector(fake.embed_query(DOCS[1][1]), k=1)[0].id == \
            "berlin"
        assert store.delete() and store.similarity_search("capital", k=3) == []


def test_a_new_file_takes_index_create_options(tmp_path):
    fake = TestStandardSuite.get_embeddings()  # 6-d
    with EdgevecVectorStore(tmp_path / "f8.edgevec", fake, codecs=["binary", "f8e4m3"],
                            dims=4) as store:
        store.add_documents([Document(page_content=d[1], id=d[0]) for d in DOCS])
        info = store.index.info()
        assert info["codecs"] == ["binary", "f8e4m3"] and info["projection"]["dims"] == 4
        assert store.similarity_search_by_vector(fake.embed_query(DOCS[1][1]), k=1)[0].id == \
            "berlin"


def test_importing_without_the_extra_names_it():
    out = import_error_without("edgevec.integrations.langchain", "langchain_core")
    assert out.startswith("MissingExtra") and "pip install 'edgevec[langchain]'" in out
