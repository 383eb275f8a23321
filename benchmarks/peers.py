"""The peer hybrid retrievers ragloop is compared with, built as their documentation shows.

- LangChain: ``EnsembleRetriever`` (weighted reciprocal rank fusion, c=60, equal weights) over
  ``BM25Retriever`` (rank_bm25 Okapi; default tokeniser ``str.split``, or a given
  ``preprocess_func``) and an ``InMemoryVectorStore`` retriever.
- Haystack 2.x API: ``InMemoryBM25Retriever`` + ``InMemoryEmbeddingRetriever`` over one
  ``InMemoryDocumentStore``, joined by ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``
  in a ``Pipeline`` whose query embedder is a one-line component around the same MiniLM.

Both index exactly ragloop's chunks (title + text, the text ragloop embeds) with the same
precomputed vectors, embed the query live with the same MiniLM, and map chunks to documents
the same way (a document ranks at its best chunk). The vector store receives numpy rows rather
than Python lists, which only makes the peers faster than they are with their defaults.
Imported only by benchmarks: the peers are the optional ``bench`` extra.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from indexing.types import Chunk

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


class LangChainHybrid:
    """``retrieve(query) -> document ids``; ``depth`` chunks from each retriever."""

    def __init__(self, chunks: Sequence[Chunk], vectors: np.ndarray, query_embedder, *, depth: int,
                 preprocess_func: Callable[[str], list[str]] | None = None) -> None:
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.retrievers import BM25Retriever
        from langchain_core.documents import Document
        from langchain_core.embeddings import Embeddings
        from langchain_core.vectorstores import InMemoryVectorStore

        known = {c.embedding_text(): v for c, v in zip(chunks, vectors)}

        class PrecomputedEmbeddings(Embeddings):
            def embed_documents(self, texts: list[str]) -> list:
                return [known[t] for t in texts]

            def embed_query(self, text: str) -> list[float]:
                return query_embedder.embed_query(text).tolist()

        docs = [Document(page_content=c.embedding_text(), metadata={"document_id": c.document_id}, id=c.id)
                for c in chunks]
        options = {"preprocess_func": preprocess_func} if preprocess_func else {}
        bm25 = BM25Retriever.from_documents(docs, k=depth, **options)
        store = InMemoryVectorStore(PrecomputedEmbeddings())
        store.add_documents(docs, ids=[c.id for c in chunks])
        self.retriever = EnsembleRetriever(retrievers=[bm25, store.as_retriever(search_kwargs={"k": depth})])

    def retrieve(self, query: str) -> list[str]:
        return list(dict.fromkeys(d.metadata["document_id"] for d in self.retriever.invoke(query)))


class HaystackHybrid:
    """``retrieve(query) -> document ids``; ``depth`` chunks from each retriever."""

    def __init__(self, chunks: Sequence[Chunk], vectors: np.ndarray, query_embedder, *, depth: int,
                 bm25_algorithm: str = "BM25L") -> None:
        from haystack import Document, Pipeline, component
        from haystack.components.joiners import DocumentJoiner
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore

        @component
        class QueryEmbedder:
            @component.output_types(embedding=list[float])
            def run(self, text: str) -> dict:
                return {"embedding": query_embedder.embed_query(text).tolist()}

        store = InMemoryDocumentStore(bm25_algorithm=bm25_algorithm)
        store.write_documents([Document(id=c.id, content=c.embedding_text(), embedding=v.tolist(),
                                        meta={"document_id": c.document_id}) for c, v in zip(chunks, vectors)])
        pipeline = Pipeline()
        pipeline.add_component("embedder", QueryEmbedder())
        pipeline.add_component("bm25", InMemoryBM25Retriever(store, top_k=depth))
        pipeline.add_component("dense", InMemoryEmbeddingRetriever(store, top_k=depth))
        pipeline.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion"))
        pipeline.connect("embedder.embedding", "dense.query_embedding")
        pipeline.connect("bm25", "joiner")
        pipeline.connect("dense", "joiner")
        self.pipeline = pipeline

    def retrieve(self, query: str) -> list[str]:
        out = self.pipeline.run({"embedder": {"text": query}, "bm25": {"query": query}})
        return list(dict.fromkeys(d.meta["document_id"] for d in out["joiner"]["documents"]))
