"""edgevec as a LangChain vector store (`pip install 'edgevec[langchain]'`).

    from edgevec.integrations.langchain import EdgevecVectorStore
    store = EdgevecVectorStore("notes.edgevec")            # embeds with the model in the file
    store.add_texts(["Paris is the capital of France"], metadatas=[{"lang": "en"}])
    store.similarity_search("capital of France", k=4, filter={"lang": "en"})
    retriever = store.as_retriever(search_kwargs={"k": 4, "mode": "hybrid"})

Two ways to embed: the text model stored in the file (the default, "minilm-l6": no
`Embeddings` object, queries use exactly the model that built the file, hybrid BM25 +
vector search) or any LangChain `Embeddings` you pass (`embedding=`): the file then holds
your vectors, your texts and their BM25 postings, and text queries are embedded by it and
searched in hybrid mode too. Ids are strings (`Document.id`, or generated); adding a
document whose id is stored replaces it in one commit. Filters are edgevec's metadata
conditions (`{"lang": "en", "year": {"$gte": 2020}}`, see `edgevec.filters`). Search
options pass through `search_kwargs` or keyword arguments: `mode` ("hybrid", "dense",
"lexical"), `alpha`, `exact`, `m`, `min_score`.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Callable

import numpy as np

from .. import index as _index
from ..errors import InvalidInput, MissingExtra
from . import check_writable, open_existing

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
    from langchain_core.vectorstores.utils import maximal_marginal_relevance
except ImportError:
    raise MissingExtra("edgevec.integrations.langchain", "langchain") from None

__all__ = ["EdgevecVectorStore"]

SEARCH_OPTIONS = ("mode", "alpha", "exact", "m", "min_score", "threads")


class EdgevecVectorStore(VectorStore):
    """A LangChain `VectorStore` over one .edgevec file (created when missing)."""

    def __init__(self, path: str | os.PathLike, embedding: Embeddings | None = None, *,
                 model: str = "minilm-l6", lexical: bool = True, mode: str | None = None,
                 read_only: bool = False, **create_options: Any) -> None:
        """path: the index file; opened for writing (one writer per file), created when
        missing: with `model` stored in it when no `embedding` is given, else on the first
        add (its dimension is the embedding's). read_only: open an existing file for
        searching only (no lock; e.g. a file shipped inside an app). lexical: keep BM25
        postings for hybrid search. mode: the default search mode (default: hybrid when
        the file keeps postings, else dense). create_options: more
        `edgevec.Index.create` options."""
        self._path = os.fspath(path)
        self._embedding = embedding
        self._lexical = lexical
        self._create_options = create_options
        self._read_only = read_only
        self._lock = threading.RLock()  # the async methods run the sync ones in threads
        self._index = open_existing(self._path, read_only)
        if self._index is not None:
            has_model = self._index.info()["embedder"] is not None
            if has_model and embedding is not None:
                self.close()
                raise InvalidInput(f"{self._path} embeds with the model stored in it: leave "
                                   "out embedding= (its vectors would not match)")
            if not has_model and embedding is None and self._index.dim:
                self.close()
                raise InvalidInput(f"{self._path} holds vectors from your own model and no "
                                   "text model: pass embedding= (the Embeddings that made "
                                   "them)")
        elif embedding is None:
            self._index = _index.Index.create(self._path, model=model, lexical=lexical,
                                              **create_options)
        self._mode = mode

    # --- the index -----------------------------------------------------------------------

    @property
    def index(self) -> _index.Index | None:
        """The open `edgevec.Index` (None until the first add, with your own Embeddings)."""
        return self._index

    @property
    def embeddings(self) -> Embeddings | None:
        return self._embedding

    def close(self) -> None:
        with self._lock:
            if self._index is not None:
                self._index.close()
                self._index = None

    def __enter__(self) -> "EdgevecVectorStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _writable(self) -> None:
        check_writable(self._read_only, self._path)

    def _ensure(self, vectors: np.ndarray | None) -> _index.Index:
        self._writable()
        if self._index is None:  # your own Embeddings: the first batch sets the dimension
            self._index = _index.Index.create(self._path, dim=vectors.shape[1],
                                              lexical=self._lexical, **self._create_options)
        return self._index

    # --- writing -------------------------------------------------------------------------

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Add texts (embedded by your Embeddings or the file's model) with their metadata;
        an id already stored is replaced. Returns the ids (generated where None)."""
        self._writable()
        texts = list(texts)
        if not texts:
            return []
        ids = list(ids) if ids is not None else [None] * len(texts)
        if len(ids) != len(texts) or (metadatas is not None and len(metadatas) != len(texts)):
            raise InvalidInput(f"add_texts got {len(texts)} texts, {len(ids)} ids and "
                               f"{'no' if metadatas is None else len(metadatas)} metadatas: "
                               "give one of each per text")
        ids = [uuid.uuid4().hex if i is None else str(i) for i in ids]
        metadatas = [dict(m) if m else None for m in metadatas or [None] * len(texts)]
        keep = list({ident: j for j, ident in enumerate(ids)}.values())  # an id twice: last
        texts, metadatas = [texts[j] for j in keep], [metadatas[j] for j in keep]
        batch_ids = [ids[j] for j in keep]
        vectors = None
        if self._embedding is not None:
            vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        with self._lock:
            idx = self._ensure(vectors)
            idx.add(vectors, ids=batch_ids, texts=texts, metadata=metadatas, replace=True)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete by id (ids not stored are ignored); None deletes every document."""
        with self._lock:
            self._writable()
            if self._index is None:
                return True
            if ids is None:
                wanted = self._index.ids()
            else:
                wanted = [str(i) for i in ids]
                wanted = [i for i, live in zip(wanted, self._index.contains(wanted)) if live]
            if wanted:
                self._index.delete(wanted)
        return True

    # --- reading -------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in that order; missing ids are skipped."""
        with self._lock:
            if self._index is None:
                return []
            wanted = [str(i) for i in ids]
            found = [self._index.get(i) for i, live in
                     zip(wanted, self._index.contains(wanted)) if live]
        return [Document(page_content=r.text or "", metadata=r.metadata or {}, id=str(r.id))
                for r in found]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4,
                                     filter: dict | None = None,  # noqa: A002
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """The k best documents for a text query, with edgevec's score (higher is better:
        cosine for dense, BM25 for lexical, the fusion score for hybrid)."""
        return self._search(query, None, k, filter, kwargs)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: dict | None = None,  # noqa: A002
                                    **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self._search(None, embedding, k, filter, kwargs)]

    def similarity_search_with_score_by_vector(
            self, embedding: list[float], k: int = 4, filter: dict | None = None,  # noqa: A002
            **kwargs: Any) -> list[tuple[Document, float]]:
        return self._search(None, embedding, k, filter, kwargs)

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: dict | None = None,  # noqa: A002
                                      **kwargs: Any) -> list[Document]:
        """Maximal marginal relevance: `fetch_k` candidates by similarity, then k of them
        chosen for relevance to the query and diversity among themselves."""
        return self.max_marginal_relevance_search_by_vector(
            self._embed_query(query), k, fetch_k, lambda_mult, filter=filter, **kwargs)

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4,
                                                fetch_k: int = 20, lambda_mult: float = 0.5,
                                                filter: dict | None = None,  # noqa: A002
                                                **kwargs: Any) -> list[Document]:
        kwargs.setdefault("mode", "dense")
        found = self._search(None, embedding, max(k, fetch_k), filter, kwargs)
        if not found:
            return []
        with self._lock:
            vectors = np.stack([self._index.get(doc.id).vector for doc, _ in found])
        chosen = maximal_marginal_relevance(np.asarray(embedding, dtype=np.float32), vectors,
                                            lambda_mult=lambda_mult, k=k)
        return [found[j][0] for j in chosen]

    def _embed_query(self, query: str) -> list[float]:
        if self._embedding is not None:
            return self._embedding.embed_query(query)
        with self._lock:
            return self._index.embedder.encode([query])[0].tolist()

    def _search(self, text: str | None, vector: Any, k: int, filter: dict | None,  # noqa: A002
                kwargs: dict) -> list[tuple[Document, float]]:
        unknown = set(kwargs) - set(SEARCH_OPTIONS)
        if unknown:
            raise InvalidInput(f"unknown search options {sorted(unknown)}; edgevec takes "
                               f"{', '.join(SEARCH_OPTIONS)} and filter")
        options = {key: kwargs[key] for key in SEARCH_OPTIONS if key in kwargs}
        mode = options.setdefault("mode", self._mode)
        if text is not None and self._embedding is not None and mode != "lexical":
            vector = self._embedding.embed_query(text)  # your model; BM25 gets the text
        with self._lock:
            if self._index is None or len(self._index) == 0:
                return []
            if vector is None:
                results = self._index.search(text, k, filter=filter, **options)
            else:
                results = self._index.search(np.asarray(vector, dtype=np.float32), k,
                                             filter=filter, text=text, **options)
        return [(Document(page_content=hit.text or "", metadata=hit.metadata or {},
                          id=str(hit.id)), float(hit.score)) for hit in results]

    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4,
                                                 **kwargs: Any) -> list[tuple[Document, float]]:
        """Scores in [0, 1] (LangChain's relevance, for score thresholds): dense search by
        default, (1 + cosine) / 2; hybrid: the fusion score over its maximum; lexical:
        BM25 / (1 + BM25)."""
        kwargs.setdefault("mode", "dense")
        found = self.similarity_search_with_score(query, k, **kwargs)
        if kwargs["mode"] == "hybrid" and kwargs.get("alpha") is None:
            rrf_k = self._index.info()["lexical"]["rrf"]["k"] if self._index else 1
            scale = (rrf_k + 1) / 2  # two lists that both rank a document first
        elif kwargs["mode"] == "hybrid":
            scale = 1.0
        else:
            scale = None
        return [(doc, score * scale if scale else
                 score / (1 + score) if kwargs["mode"] == "lexical" else (1 + score) / 2)
                for doc, score in found]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Relevance in [0, 1] from the scores of dense search: (1 + cosine) / 2."""
        return lambda score: (1.0 + score) / 2.0

    # --- constructors --------------------------------------------------------------------

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None,
                   metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                   path: str | os.PathLike | None = None,
                   **kwargs: Any) -> "EdgevecVectorStore":
        """A store at `path` (required) holding `texts`; see `EdgevecVectorStore`."""
        if path is None:
            raise InvalidInput("EdgevecVectorStore.from_texts needs path= (the .edgevec file "
                               "to create or add to)")
        store = cls(path, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
