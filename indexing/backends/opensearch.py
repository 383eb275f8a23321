"""Search backend on an OpenSearch cluster: BM25 and Lucene HNSW k-NN in one index.

Why this shape:
- One index per embedding dimension (``<prefix>-d<dim>``) holds every tenant; ``tenant``,
  ``document_id`` and ``access`` are keyword fields and the tenant filter sits inside every
  query (a ``bool`` filter for BM25, the k-NN ``filter`` for dense, which OpenSearch applies
  during the graph search), so a big tenant never crowds a small one out of the top k.
- Title and text are analysed like the embedded backend's BM25 (standard tokenizer,
  possessive, lowercase, Lucene English stopwords, Snowball English stemmer) and copied into
  one ``content`` field, with the same BM25 k1/b, so both backends rank alike.
- ``replace_document`` sends the new chunks and the deletions of the document's stale chunks
  in one bulk request with ``refresh="wait_for"``: when it returns, searches see the new
  version. Chunk ids are the OpenSearch ``_id``s, so replaying an ingest is idempotent.
- Dense scores are reported as cosine similarity (OpenSearch's ``(1 + cos) / 2`` mapped
  back), the same scale as the embedded backend.

    >>> backend = OpenSearchBackend("http://127.0.0.1:9200", dimension=384)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import NotFoundError, RequestError

from indexing.types import Chunk, SearchHit

_ANALYSIS = {
    "filter": {
        "ragloop_english_stop": {"type": "stop", "stopwords": "_english_"},
        "ragloop_english_possessive": {"type": "stemmer", "language": "possessive_english"},
        "ragloop_english_stemmer": {"type": "snowball", "language": "English"},
    },
    "analyzer": {
        "ragloop_english": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["ragloop_english_possessive", "lowercase", "ragloop_english_stop", "ragloop_english_stemmer"],
        }
    },
}


class OpenSearchBackend:
    """Search backend on OpenSearch; see the module docstring for the design."""

    def __init__(self, url: str, *, dimension: int, index_prefix: str = "ragloop-chunks",
                 k1: float = 1.2, b: float = 0.75, ef_search: int = 100, timeout: float = 30.0,
                 client: OpenSearch | None = None) -> None:
        self.url = url
        self.dimension = dimension
        self.index_name = f"{index_prefix}-d{dimension}"
        self.k1, self.b = k1, b
        self.ef_search = ef_search
        self.client = client or OpenSearch(hosts=[url], timeout=timeout)
        self._ensure_index()

    # -- writes ------------------------------------------------------------------------------

    def replace_document(self, document_id: str, tenant: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        vectors = self._validate(document_id, tenant, chunks, vectors)
        keep = {c.id for c in chunks}
        stale = [cid for cid in self._document_chunk_ids(tenant, document_id) if cid not in keep]
        actions: list[dict[str, Any]] = [
            {"_op_type": "index", "_index": self.index_name, "_id": c.id, "_source": self._source(c, v)}
            for c, v in zip(chunks, vectors)
        ]
        actions += [{"_op_type": "delete", "_index": self.index_name, "_id": cid} for cid in stale]
        if actions:
            helpers.bulk(self.client, actions, refresh="wait_for", chunk_size=500, ignore_status=(404,))

    def delete_document(self, tenant: str, document_id: str) -> int:
        response = self.client.delete_by_query(
            index=self.index_name,
            body={"query": _document_filter(tenant, document_id)},
            params={"refresh": "true", "conflicts": "proceed"},
        )
        return int(response.get("deleted", 0))

    # -- reads -------------------------------------------------------------------------------

    def search_bm25(self, *, tenant: str, text: str, k: int) -> list[SearchHit]:
        if k <= 0 or not text.strip():
            return []
        body = {
            "size": k,
            "_source": {"excludes": ["vector"]},
            "query": {"bool": {"must": [{"match": {"content": {"query": text}}}],
                               "filter": [{"term": {"tenant": tenant}}]}},
        }
        return [self._hit(h, float(h["_score"])) for h in self._search(body)]

    def search_dense(self, *, tenant: str, vector: np.ndarray, k: int) -> list[SearchHit]:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension:
            raise ValueError(f"query vector has {query.shape[0]} dimensions; this index holds {self.dimension}")
        if k <= 0:
            return []
        body = {
            "size": k,
            "_source": {"excludes": ["vector"]},
            "query": {"knn": {"vector": {"vector": _normalise(query).tolist(), "k": max(k, self.ef_search),
                                         "filter": {"term": {"tenant": tenant}}}}},
        }
        # Lucene cosinesimil scores are (1 + cos) / 2; report the cosine itself.
        return [self._hit(h, 2.0 * float(h["_score"]) - 1.0) for h in self._search(body)][:k]

    def count(self, tenant: str | None = None) -> int:
        query = {"term": {"tenant": tenant}} if tenant is not None else {"match_all": {}}
        return int(self.client.count(index=self.index_name, body={"query": query})["count"])

    def get_chunk(self, chunk_id: str) -> Chunk | None:
        try:
            found = self.client.get(index=self.index_name, id=chunk_id, params={"_source_excludes": "vector"})
        except NotFoundError:
            return None
        return _chunk(found["_source"]) if found.get("found") else None

    def drop_index(self) -> None:
        """Delete this backend's whole index (every tenant); for tests and rebuilds."""
        self.client.indices.delete(index=self.index_name, params={"ignore_unavailable": "true"})

    def close(self) -> None:
        self.client.close()

    # -- internals -----------------------------------------------------------------------------

    def _ensure_index(self) -> None:
        if self.client.indices.exists(index=self.index_name):
            self._check_dimension()
            return
        body = {
            "settings": {
                "index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0,
                          "knn.algo_param.ef_search": self.ef_search,
                          "similarity": {"default": {"type": "BM25", "k1": self.k1, "b": self.b}}},
                "analysis": _ANALYSIS,
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "chunk_id": {"type": "keyword"},
                    "tenant": {"type": "keyword"},
                    "document_id": {"type": "keyword"},
                    "access": {"type": "keyword"},
                    "ordinal": {"type": "integer"},
                    "title": {"type": "text", "analyzer": "ragloop_english", "copy_to": "content"},
                    "text": {"type": "text", "analyzer": "ragloop_english", "copy_to": "content"},
                    "content": {"type": "text", "analyzer": "ragloop_english"},
                    "metadata": {"type": "object", "enabled": False},
                    "vector": {"type": "knn_vector", "dimension": self.dimension,
                               "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
                                          "parameters": {"m": 16, "ef_construction": 128}}},
                },
            },
        }
        try:
            self.client.indices.create(index=self.index_name, body=body)
        except RequestError as exc:  # another process created it first
            if "resource_already_exists_exception" not in str(exc):
                raise

    def _check_dimension(self) -> None:
        mapping = self.client.indices.get_mapping(index=self.index_name)
        props = next(iter(mapping.values()))["mappings"].get("properties", {})
        found = props.get("vector", {}).get("dimension")
        if found != self.dimension:
            raise ValueError(f"OpenSearch index {self.index_name!r} at {self.url} has vector dimension {found}, "
                             f"not {self.dimension}; use another index prefix or drop the index")

    def _document_chunk_ids(self, tenant: str, document_id: str) -> list[str]:
        hits = helpers.scan(self.client, index=self.index_name, _source=False,
                            query={"query": _document_filter(tenant, document_id)})
        return [h["_id"] for h in hits]

    def _search(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        return self.client.search(index=self.index_name, body=body)["hits"]["hits"]

    def _source(self, chunk: Chunk, vector: np.ndarray) -> dict[str, Any]:
        return {
            "chunk_id": chunk.id, "tenant": chunk.tenant, "document_id": chunk.document_id,
            "ordinal": chunk.ordinal, "title": chunk.title, "text": chunk.text,
            "metadata": chunk.metadata, "access": chunk.access, "vector": vector.tolist(),
        }

    def _hit(self, raw: dict[str, Any], score: float) -> SearchHit:
        return SearchHit(chunk=_chunk(raw["_source"]), score=score)

    def _validate(self, document_id: str, tenant: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> np.ndarray:
        if len(chunks) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.dimension):
            raise ValueError(f"vectors have shape {vectors.shape}; expected ({len(chunks)}, {self.dimension}), "
                             "one row per chunk")
        for c in chunks:
            if c.document_id != document_id or c.tenant != tenant:
                raise ValueError(f"chunk {c.id} belongs to ({c.tenant!r}, {c.document_id!r}), not to "
                                 f"({tenant!r}, {document_id!r})")
        return np.stack([_normalise(v) for v in vectors])


def _document_filter(tenant: str, document_id: str) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"document_id": document_id}}]}}


def _chunk(source: dict[str, Any]) -> Chunk:
    return Chunk(id=source["chunk_id"], document_id=source["document_id"], tenant=source["tenant"],
                 ordinal=source["ordinal"], text=source["text"], title=source.get("title", ""),
                 metadata=source.get("metadata") or {}, access=source.get("access") or [])


def _normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)
