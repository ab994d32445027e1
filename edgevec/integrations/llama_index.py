"""edgevec as a LlamaIndex vector store (`pip install 'edgevec[llama-index]'`).

    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from edgevec.integrations.llama_index import EdgevecEmbedding, EdgevecVectorStore
    store = EdgevecVectorStore("notes.edgevec")
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=EdgevecEmbedding())                   # offline, on the CPU
    index.as_query_engine(vector_store_query_mode="hybrid")  # or as_retriever(...)

The file keeps each node's vector, text, metadata and BM25 postings (`stores_text`), so
it is the whole index: `VectorStoreIndex.from_vector_store(EdgevecVectorStore(path),
embed_model=...)` reopens it. Query modes: default (dense), "hybrid" (dense + BM25, fused
by reciprocal rank, or weighted by `alpha` when given: 1 = dense only, 0 = BM25 only),
"sparse" / "text_search" (BM25), "mmr". `MetadataFilters` map to edgevec filters (==, !=,
>, >=, <, <=, in, nin, is_empty; and/or/not). `EdgevecEmbedding` is the text model
edgevec builds and stores in its files (MiniLM-L6, int8, no network once built).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import index as _index
from ..errors import InvalidInput, MissingExtra
from . import check_writable, open_existing

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError:
    raise MissingExtra("edgevec.integrations.llama_index", "llama-index") from None

__all__ = ["EdgevecEmbedding", "EdgevecVectorStore"]

# LlamaIndex's own record of a node (its JSON, its type), nested so that it does not become
# a filterable metadata column
NODE_KEY = "_llama_index"
OPERATORS = {FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
             FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
             FilterOperator.IN: "$in", FilterOperator.NIN: "$nin"}
MODES = {VectorStoreQueryMode.DEFAULT: "dense", VectorStoreQueryMode.HYBRID: "hybrid",
         VectorStoreQueryMode.SPARSE: "lexical", VectorStoreQueryMode.TEXT_SEARCH: "lexical",
         VectorStoreQueryMode.MMR: "dense"}


def to_edgevec_filter(filters: MetadataFilters | MetadataFilter) -> dict:
    """LlamaIndex `MetadataFilters` -> an edgevec filter dict (edgevec.filters)."""
    if isinstance(filters, MetadataFilter):
        if filters.operator == FilterOperator.IS_EMPTY:
            return {filters.key: {"$exists": False}}
        if filters.operator not in OPERATORS:
            raise InvalidInput(f"edgevec filters have no {filters.operator.value!r} operator "
                               f"(key {filters.key!r}); use one of "
                               f"{', '.join(op.value for op in OPERATORS)} or is_empty")
        return {filters.key: {OPERATORS[filters.operator]: filters.value}}
    parts = [to_edgevec_filter(f) for f in filters.filters]
    if filters.condition == FilterCondition.OR:
        return {"$or": parts}
    if filters.condition == FilterCondition.NOT:
        return {"$not": {"$and": parts}}
    return {"$and": parts}


class EdgevecEmbedding(BaseEmbedding):
    """The text model edgevec stores in its index files (default "minilm-l6": MiniLM-L6,
    int8, 384-d), as a LlamaIndex embedding: local, CPU, no network once built
    (`edgevec model build minilm-l6`)."""

    _embedder: Any = PrivateAttr()

    def __init__(self, model: str = "minilm-l6", **kwargs: Any) -> None:
        from ..embed import Embedder
        super().__init__(model_name=model, **kwargs)
        self._embedder = Embedder.load(model)

    @classmethod
    def class_name(cls) -> str:
        return "EdgevecEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.encode([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.encode(texts).tolist()


class EdgevecVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over one .edgevec file (created on the first add)."""

    stores_text: bool = True
    is_embedding_query: bool = True
    path: str
    lexical: bool = True
    create_options: dict = {}  # more edgevec.Index.create options (copied per instance)

    _index: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr()
    _read_only: bool = PrivateAttr(default=False)

    def __init__(self, path: str | os.PathLike, *, lexical: bool = True,
                 read_only: bool = False, **kwargs: Any) -> None:
        """path: the index file, opened for writing (one writer per file) or, with
        read_only, for searching only (e.g. shipped inside an app); created on the first
        add with the nodes' embedding dimension. lexical: keep BM25 postings of the node
        texts (hybrid and sparse modes). create_options: more `edgevec.Index.create`
        options for a new file, e.g. {"codecs": "compact"} or {"pca": 192}."""
        super().__init__(path=os.fspath(path), lexical=lexical, **kwargs)
        self._lock = threading.RLock()
        self._read_only = read_only
        self._index = open_existing(self.path, read_only)

    @classmethod
    def class_name(cls) -> str:
        return "EdgevecVectorStore"

    @property
    def client(self) -> _index.Index | None:
        """The open `edgevec.Index` (None before the first add of a new file)."""
        return self._index

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    def _writer(self, dim: int | None = None) -> _index.Index:
        check_writable(self._read_only, self.path)
        if self._index is None and dim is not None:
            self._index = _index.Index.create(self.path, dim=dim, lexical=self.lexical,
                                              **self.create_options)
        return self._index

    # --- writing -------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store nodes (each with its embedding); a node id already stored is replaced."""
        nodes = list({n.node_id: n for n in nodes}.values())  # an id twice: the last
        if not nodes:
            return []
        missing = [n.node_id for n in nodes if n.embedding is None]
        if missing:
            raise InvalidInput(f"{len(missing)} node(s) have no embedding (first: "
                               f"{missing[0]!r}): embed them first, e.g. through "
                               "VectorStoreIndex with an embed_model")
        vectors = np.asarray([n.embedding for n in nodes], dtype=np.float32)
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        metadata = []
        for n in nodes:
            meta = node_to_metadata_dict(n, remove_text=True, flat_metadata=False)
            meta[NODE_KEY] = {key: meta.pop(key) for key in ("_node_content", "_node_type")}
            metadata.append(meta)
        with self._lock:
            self._writer(vectors.shape[1]).add(vectors, ids=[n.node_id for n in nodes],
                                               texts=texts, metadata=metadata, replace=True)
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document `ref_doc_id`."""
        self.delete_nodes(filters=MetadataFilters(filters=[
            MetadataFilter(key="ref_doc_id", value=ref_doc_id)]))

    def delete_nodes(self, node_ids: list[str] | None = None,
                     filters: MetadataFilters | None = None, **delete_kwargs: Any) -> None:
        """Delete nodes by id and/or filter (both: those matching both)."""
        with self._lock:
            index = self._writer()
            if index is None:
                return
            doomed = self._select(node_ids, filters)
            if doomed:
                index.delete(doomed)

    def clear(self) -> None:
        self.delete_nodes()

    # --- reading -------------------------------------------------------------------------

    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        with self._lock:
            if self._index is None:
                return []
            return [self._node(self._index.get(i)) for i in self._select(node_ids, filters)]

    def _select(self, node_ids: list[str] | None, filters: MetadataFilters | None
                ) -> list[str]:
        """Ids of the stored nodes among `node_ids` (None: all) that match `filters`."""
        where = self._filter(filters)
        if where is False:
            return []
        if node_ids is None:
            return [str(i) for i in self._index.ids(filter=where)]
        wanted = [str(i) for i in node_ids]
        live = [i for i, ok in zip(wanted, self._index.contains(wanted)) if ok]
        if where is None:
            return live
        matching = set(map(str, self._index.ids(filter=where)))
        return [i for i in live if i in matching]

    def _filter(self, filters: MetadataFilters | None, doc_ids: list[str] | None = None
                ) -> dict | None | bool:
        """The edgevec filter of `filters` (and of `doc_ids`), None for no condition, or
        False when it names a field no stored node has (nothing can match)."""
        parts = []
        if filters is not None and filters.filters:
            parts.append(to_edgevec_filter(filters))
        if doc_ids is not None:
            parts.append({"ref_doc_id": {"$in": [str(d) for d in doc_ids]}})
        if not parts:
            return None
        where = parts[0] if len(parts) == 1 else {"$and": parts}
        fields = self._index.info()["fields"]
        if any(key not in fields for key in _field_names(where)):
            return False if not _negated(where) else where
        return where

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Dense (default), hybrid, sparse/text_search (BM25) or MMR search."""
        if query.mode not in MODES:
            raise InvalidInput(f"edgevec answers the query modes "
                               f"{', '.join(m.value for m in MODES)}, not {query.mode.value!r}")
        mode = MODES[query.mode]
        k = query.similarity_top_k
        if mode == "hybrid" and query.hybrid_top_k:
            k = query.hybrid_top_k
        elif mode == "lexical" and query.sparse_top_k:
            k = query.sparse_top_k
        with self._lock:
            if self._index is None or len(self._index) == 0:
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
            # an empty list of doc or node ids restricts nothing (VectorStoreIndex passes
            # the empty node list of its index struct when the store keeps the nodes)
            where = self._filter(query.filters, query.doc_ids or None)
            if where is False:
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
            if query.node_ids:  # a few given nodes: compare them exactly
                return self._rank_given(query, where, k)
            mmr = query.mode == VectorStoreQueryMode.MMR
            fetch = max(k, kwargs.get("mmr_prefetch_k", 4 * k)) if mmr else k
            options = {"mode": mode, "filter": where}
            if mode == "hybrid" and query.alpha is not None:
                options["alpha"] = query.alpha
            if mode == "lexical":
                if not query.query_str:
                    raise InvalidInput("a sparse/text_search query needs query_str")
                results = self._index.search(query.query_str, fetch, **options)
            else:
                if query.query_embedding is None:
                    raise InvalidInput(f"a {query.mode.value} query needs query_embedding "
                                       "(this store keeps your vectors, not a model)")
                text = query.query_str if mode == "hybrid" else None
                if mode == "hybrid" and not text:
                    raise InvalidInput("a hybrid query needs query_str (searched by BM25)")
                results = self._index.search(np.asarray(query.query_embedding, np.float32),
                                             fetch, text=text, **options)
            ids = [str(i) for i in results.ids]
            scores = [float(s) for s in results.scores]
            if mmr and ids:
                vectors = [self._index.get(i).vector.tolist() for i in ids]
                scores, ids = get_top_k_mmr_embeddings(
                    query.query_embedding, vectors, similarity_top_k=k, embedding_ids=ids,
                    mmr_threshold=query.mmr_threshold)
            nodes = [self._node(self._index.get(i)) for i in ids]
        return VectorStoreQueryResult(nodes=nodes, similarities=list(scores), ids=list(ids))

    def _rank_given(self, query: VectorStoreQuery, where: dict | None, k: int
                    ) -> VectorStoreQueryResult:
        ids = self._select(query.node_ids, None)
        if where is not None:
            allowed = set(map(str, self._index.ids(filter=where)))
            ids = [i for i in ids if i in allowed]
        if not ids or query.query_embedding is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        q = np.asarray(query.query_embedding, np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-30)
        records = [self._index.get(i) for i in ids]
        scores = np.array([float(r.vector @ q) for r in records])
        order = np.argsort(-scores, kind="stable")[:k]
        return VectorStoreQueryResult(nodes=[self._node(records[j]) for j in order],
                                      similarities=[float(scores[j]) for j in order],
                                      ids=[str(records[j].id) for j in order])

    @staticmethod
    def _node(record) -> BaseNode:
        meta = dict(record.metadata or {})
        meta.update(meta.pop(NODE_KEY, {}))
        return metadata_dict_to_node(meta, text=record.text or "")


def _field_names(where: Any) -> list[str]:
    if isinstance(where, dict):
        out = []
        for key, value in where.items():
            if key in ("$and", "$or"):
                out += [n for part in value for n in _field_names(part)]
            elif key == "$not":
                out += _field_names(value)
            elif not key.startswith("$"):
                out.append(key)
        return out
    return []


def _negated(where: Any) -> bool:
    """Whether a condition might match rows that lack one of its fields ($not, $ne, $nin,
    $exists, or an $or whose other branches may match): then a field no row has cannot
    simply mean "nothing matches"."""
    if isinstance(where, dict):
        return any(key in ("$not", "$or", "$ne", "$nin", "$exists") or _negated(value)
                   for key, value in where.items())
    if isinstance(where, list):
        return any(_negated(part) for part in where)
    return False
