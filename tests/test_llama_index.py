"""The LlamaIndex adapter (edgevec.integrations.llama_index) end to end: VectorStoreIndex over
an edgevec file with edgevec's own local embedding (no network), every query mode,
MetadataFilters, deleting a source document, reopening with from_vector_store."""

from __future__ import annotations

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

import edgevec
from helpers import import_error_without
from edgevec.integrations.llama_index import EdgevecEmbedding, EdgevecVectorStore

DOCS = [("paris", "Paris is the capital and largest city of France.", {"lang": "en", "n": 1}),
        ("berlin", "Berlin is the capital of Germany.", {"lang": "en", "n": 2}),
        ("zip", "The zipfile module reads and writes ZIP archives.", {"lang": "en", "n": 3}),
        ("csv", "The csv module reads comma separated values files.", {"lang": "en", "n": 4}),
        ("madrid", "Madrid es la capital de España.", {"lang": "es", "n": 5})]


@pytest.fixture(scope="module")
def embed_model(minilm):
    return EdgevecEmbedding()


@pytest.fixture()
def built(tmp_path, embed_model):
    """A VectorStoreIndex built from Documents through an edgevec store (a whitespace
    tokenizer for the splitter: its default fetches a tiktoken vocabulary)."""
    store = EdgevecVectorStore(tmp_path / "li.edgevec")
    index = VectorStoreIndex.from_documents(
        [Document(text=t, metadata=m, doc_id=d) for d, t, m in DOCS],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model, transformations=[SentenceSplitter(tokenizer=str.split)])
    yield store, index
    store.close()


def _docs(nodes) -> list[str]:
    return [n.node.ref_doc_id for n in nodes]


def test_vector_store_index_retrieves_in_every_mode(built):
    store, index = built
    assert len(store.client) == len(DOCS)
    assert _docs(index.as_retriever(similarity_top_k=1).retrieve("capital of France")) == \
        ["paris"]
    for mode in ("default", "hybrid", "sparse", "text_search", "mmr"):
        got = index.as_retriever(similarity_top_k=2, vector_store_query_mode=mode
                                 ).retrieve("zipfile ZIP archives")
        assert _docs(got)[0] == "zip", mode
    weighted = index.as_retriever(similarity_top_k=2, vector_store_query_mode="hybrid",
                                  alpha=0.0).retrieve("comma separated values")
    assert _docs(weighted)[0] == "csv"
    node = index.as_retriever(similarity_top_k=1).retrieve("Berlin")[0].node
    assert node.metadata == {"lang": "en", "n": 2} and "Germany" in node.get_content()


def test_metadata_filters_map_to_edgevec_filters(built):
    store, index = built

    def retrieve(*filters, condition=FilterCondition.AND):
        f = MetadataFilters(filters=list(filters), condition=condition)
        return sorted(_docs(index.as_retriever(similarity_top_k=5, filters=f
                                               ).retrieve("capital")))
    assert retrieve(MetadataFilter(key="lang", value="es")) == ["madrid"]
    assert retrieve(MetadataFilter(key="n", value=4, operator=FilterOperator.GTE)) == \
        ["csv", "madrid"]
    assert retrieve(MetadataFilter(key="n", value=[1, 2], operator=FilterOperator.IN)) == \
        ["berlin", "paris"]
    assert retrieve(MetadataFilter(key="n", value=1), MetadataFilter(key="n", value=5),
                    condition=FilterCondition.OR) == ["madrid", "paris"]
    assert retrieve(MetadataFilter(key="lang", value="en"),
                    condition=FilterCondition.NOT) == ["madrid"]
    assert retrieve(MetadataFilter(key="no_such_key", value=1)) == []
    with pytest.raises(edgevec.InvalidInput, match="no_such_key"):  # != might match all:
        retrieve(MetadataFilter(key="no_such_key", value=1,  # edgevec names the field
                                operator=FilterOperator.NE))
    with pytest.raises(edgevec.InvalidInput, match="no 'text_match' operator"):
        retrieve(MetadataFilter(key="lang", value="e", operator=FilterOperator.TEXT_MATCH))


def test_delete_a_document_get_and_delete_nodes_and_reopen(tmp_path, built, embed_model):
    store, index = built
    index.delete_ref_doc("berlin")
    assert "berlin" not in _docs(index.as_retriever(similarity_top_k=5).retrieve("Germany"))
    assert len(store.client) == len(DOCS) - 1
    es = store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="lang",
                                                                         value="es")]))
    assert [n.ref_doc_id for n in es] == ["madrid"]
    store.delete_nodes(node_ids=[es[0].node_id])
    assert store.get_nodes(node_ids=[es[0].node_id]) == []
    store.close()
    edgevec.verify(tmp_path / "li.edgevec")
    reopened = EdgevecVectorStore(tmp_path / "li.edgevec", read_only=True)
    again = VectorStoreIndex.from_vector_store(reopened, embed_model=embed_model)
    assert _docs(again.as_retriever(similarity_top_k=1).retrieve("zip archives")) == ["zip"]
    with pytest.raises(edgevec.InvalidInput, match="read_only"):
        reopened.delete("zip")
    reopened.close()
    writable = EdgevecVectorStore(tmp_path / "li.edgevec")
    writable.clear()
    assert len(writable.client) == 0
    writable.close()


def test_nodes_with_their_own_embeddings_and_wrong_queries(tmp_path):
    with_embeddings = [TextNode(text=t, id_=d, metadata=m, embedding=[float(j == i) for j in
                                                                      range(4)])
                       for i, (d, t, m) in enumerate(DOCS[:4])]
    store = EdgevecVectorStore(tmp_path / "own.edgevec")
    assert store.query(VectorStoreQuery(query_embedding=[1, 0, 0, 0])).ids == []  # no file
    assert store.add(with_embeddings) == ["paris", "berlin", "zip", "csv"]
    store.add([TextNode(text="Paris, France", id_="paris", metadata={"lang": "en", "n": 9},
                        embedding=[0, 0, 0, 1])])  # the same id again: replaced
    result = store.query(VectorStoreQuery(query_embedding=[0, 0, 0, 1], similarity_top_k=2))
    assert result.ids[0] in ("paris", "csv") and len(store.client) == 4
    assert store.get_nodes(["paris"])[0].metadata == {"lang": "en", "n": 9}
    given = store.query(VectorStoreQuery(query_embedding=[0, 1, 0, 0], similarity_top_k=5,
                                         node_ids=["zip", "berlin", "gone"]))
    assert given.ids == ["berlin", "zip"]
    with pytest.raises(edgevec.InvalidInput, match="no embedding"):
        store.add([TextNode(text="x", id_="x")])
    with pytest.raises(edgevec.InvalidInput, match="needs query_str"):
        store.query(VectorStoreQuery(query_embedding=[1, 0, 0, 0],
                                     mode=VectorStoreQueryMode.HYBRID))
    with pytest.raises(edgevec.InvalidInput, match="not 'svm'"):
        store.query(VectorStoreQuery(query_embedding=[1, 0, 0, 0],
                                     mode=VectorStoreQueryMode.SVM))
    store.close()
    with pytest.raises(edgevec.InvalidInput, match="no index file"):
        EdgevecVectorStore(tmp_path / "missing.edgevec", read_only=True)


def test_a_new_file_takes_index_create_options(tmp_path):
    nodes = [TextNode(text=t, id_=d, embedding=[float(j == i) + 0.5 for j in range(4)])
             for i, (d, t, _) in enumerate(DOCS[:4])]
    store = EdgevecVectorStore(tmp_path / "cut.edgevec",
                               create_options={"codecs": ["binary", "f8e4m3"], "dims": 2})
    store.add(nodes)
    info = store.client.info()
    assert info["codecs"] == ["binary", "f8e4m3"]
    assert info["projection"] == {"dims": 2, "kind": "prefix"} and info["dim"] == 4
    assert EdgevecVectorStore(tmp_path / "other.edgevec").create_options == {}
    store.close()


def test_importing_without_the_extra_names_it():
    out = import_error_without("edgevec.integrations.llama_index", "llama_index")
    assert out.startswith("MissingExtra") and "pip install 'edgevec[llama-index]'" in out
