"""Search backend on an OpenSearch cluster: BM25 and Lucene HNSW k-NN in one index.

Why this shape:
- One alias per embedding dimension (``<prefix>-d<dim>``) holds every tenant; it points at a
  versioned index (``<prefix>-d<dim>-v<N>``), so ``reindex_to_new_version`` can build an index
  with new settings and swap the alias in one atomic step while queries keep working. An index
  created before versioning (a plain ``<prefix>-d<dim>`` index) is used as is and replaced by
  the first reindex.
- ``tenant``, ``document_id`` and ``access`` are keyword fields; the tenant and access filters
  sit inside every query (a ``bool`` filter for BM25, the k-NN ``filter`` for dense, which
  OpenSearch applies during the graph search), so a big tenant never crowds a small one out of
  the top k and a restricted chunk never takes a place in another reader's results.
- Title and text are analysed like the embedded backend's BM25 (standard tokenizer,
  possessive, lowercase, Lucene English stopwords, Snowball English stemmer) and copied into
  one ``content`` field, with the same BM25 k1/b, so both backends rank alike. ``content`` has
  a ``cjk`` sub-field (CJK width folding, overlapping bigrams plus unigrams) that is queried
  too when the query contains Chinese, Japanese or Korean characters; English queries use the
  English field alone, so their scores stay identical to the embedded backend's.
- ``replace_documents`` sends the new chunks of a batch of documents and the deletions of
  their stale chunks in one bulk request that refreshes the index: when it returns, searches
  see the new versions, and a batch costs one refresh rather than one per document. Chunk ids
  are the OpenSearch ``_id``s, so replaying an ingest is idempotent.
- Dense scores are reported as cosine similarity (OpenSearch's ``(1 + cos) / 2`` mapped
  back), the same scale as the embedded backend.
- Hybrid queries fetch both candidate lists in one ``_msearch`` and fuse them client-side with
  the same code as the embedded backend (so both rank alike): over HTTP the round trip, not
  the scoring, dominates a query (1.4x the queries/s of two requests, benchmarks/README.md).

    >>> backend = OpenSearchBackend("http://127.0.0.1:9200", dimension=384)   # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import NotFoundError, RequestError

from indexing.backends.analyzer import has_cjk
from indexing.backends.base import DocumentChunks, checked_vectors, last_per_document
from indexing.types import Chunk, SearchHit
from schemas.settings import redact_url

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 2  # bump when the template below changes; reindex_to_new_version applies it
_ANALYSIS = {
    "filter": {
        "ragloop_english_stop": {"type": "stop", "stopwords": "_english_"},
        "ragloop_english_possessive": {"type": "stemmer", "language": "possessive_english"},
        "ragloop_english_stemmer": {"type": "snowball", "language": "English"},
        "ragloop_cjk_bigram": {"type": "cjk_bigram", "output_unigrams": True},
    },
    "analyzer": {
        "ragloop_english": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["ragloop_english_possessive", "lowercase", "ragloop_english_stop", "ragloop_english_stemmer"],
        },
        "ragloop_cjk": {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["cjk_width", "lowercase", "ragloop_cjk_bigram"],
        },
    },
}
_VERSION = re.compile(r"-v(\d+)$")


class OpenSearchBackend:
    """Search backend on OpenSearch; see the module docstring for the design."""

    def __init__(self, url: str, *, dimension: int, index_prefix: str = "ragloop-chunks",
                 k1: float = 1.2, b: float = 0.75, ef_search: int = 100, timeout: float = 30.0,
                 client: OpenSearch | None = None) -> None:
        self.url = url
        self.dimension = dimension
        self.index_name = f"{index_prefix}-d{dimension}"  # the alias every read and write goes through
        self.k1, self.b = k1, b
        self.ef_search = ef_search
        self.client = client or OpenSearch(hosts=[url], timeout=timeout)
        self._ensure_index()

    # -- writes ------------------------------------------------------------------------------

    def replace_document(self, document_id: str, tenant: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        self.replace_documents([DocumentChunks(document_id, tenant, chunks, vectors)])

    def replace_documents(self, documents: Sequence[DocumentChunks]) -> None:
        documents = last_per_document(documents)
        if not documents:
            return
        actions: list[dict[str, Any]] = []
        for doc in documents:
            vectors = self._validate(doc.document_id, doc.tenant, doc.chunks, doc.vectors)
            actions += [{"_op_type": "index", "_index": self.index_name, "_id": c.id, "_source": self._source(c, v)}
                        for c, v in zip(doc.chunks, vectors)]
        keep = set().union(*(doc.keep_ids() for doc in documents))
        stale = [cid for cid in self._chunk_ids_of(documents) if cid not in keep]
        actions += [{"_op_type": "delete", "_index": self.index_name, "_id": cid} for cid in stale]
        if actions:
            # refresh=true rather than wait_for: a batch is searchable as soon as it is written,
            # instead of after the next scheduled refresh (up to 1 s idle per batch).
            helpers.bulk(self.client, actions, refresh="true", chunk_size=500, ignore_status=(404,))

    def delete_document(self, tenant: str, document_id: str) -> int:
        response = self.client.delete_by_query(
            index=self.index_name,
            body={"query": _document_filter(tenant, document_id)},
            params={"refresh": "true", "conflicts": "proceed"},
        )
        return int(response.get("deleted", 0))

    # -- reads -------------------------------------------------------------------------------

    def search_bm25(self, *, tenant: str, text: str, k: int,
                    principals: Sequence[str] | None = None) -> list[SearchHit]:
        body = self._bm25_body(tenant, text, k, principals)
        return self._bm25_hits(self._search(body)) if body else []

    def search_dense(self, *, tenant: str, vector: np.ndarray, k: int,
                     principals: Sequence[str] | None = None) -> list[SearchHit]:
        body = self._dense_body(tenant, vector, k, principals)
        return self._dense_hits(self._search(body), k) if body else []

    def search_hybrid(self, *, tenant: str, text: str, vector: np.ndarray, k: int,
                      principals: Sequence[str] | None = None) -> tuple[list[SearchHit], list[SearchHit]]:
        """Both candidate lists in one `_msearch` round trip: over HTTP the trip, not the scoring, is most of a query's time."""
        bm25, dense = self._bm25_body(tenant, text, k, principals), self._dense_body(tenant, vector, k, principals)
        if bm25 is not None and dense is not None:
            lines = [{"index": self.index_name}, bm25, {"index": self.index_name}, dense]
            replies = self.client.msearch(body=lines)["responses"]
            if len(replies) == 2 and not any("error" in reply for reply in replies):
                return self._bm25_hits(replies[0]["hits"]["hits"]), self._dense_hits(replies[1]["hits"]["hits"], k)
            log.warning("msearch item failed; searching one by one", errors=[r.get("error") for r in replies if "error" in r])
        # One by one: the client's own retries apply, and a lasting failure raises its real exception.
        return (self._bm25_hits(self._search(bm25)) if bm25 else [], self._dense_hits(self._search(dense), k) if dense else [])

    def _bm25_body(self, tenant: str, text: str, k: int, principals: Sequence[str] | None) -> dict[str, Any] | None:
        if k <= 0 or not text.strip():
            return None
        english = {"match": {"content": {"query": text}}}
        if has_cjk(text):
            match: dict[str, Any] = {"bool": {"should": [english, {"match": {"content.cjk": {"query": text}}}],
                                              "minimum_should_match": 1}}
        else:
            match = english
        return {
            "size": k,
            "_source": {"excludes": ["vector"]},
            "query": {"bool": {"must": [match], "filter": _visibility_filter(tenant, principals)}},
        }

    def _dense_body(self, tenant: str, vector: np.ndarray, k: int, principals: Sequence[str] | None) -> dict[str, Any] | None:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension:
            raise ValueError(f"query vector has {query.shape[0]} dimensions; this index holds {self.dimension}")
        if k <= 0:
            return None
        return {
            "size": k,
            "_source": {"excludes": ["vector"]},
            "query": {"knn": {"vector": {"vector": _normalise(query).tolist(), "k": max(k, self.ef_search),
                                         "filter": {"bool": {"filter": _visibility_filter(tenant, principals)}}}}},
        }

    def _bm25_hits(self, raw: list[dict[str, Any]]) -> list[SearchHit]:
        return [self._hit(h, float(h["_score"])) for h in raw]

    def _dense_hits(self, raw: list[dict[str, Any]], k: int) -> list[SearchHit]:
        # Lucene cosinesimil scores are (1 + cos) / 2; report the cosine itself.
        return [self._hit(h, 2.0 * float(h["_score"]) - 1.0) for h in raw][:k]

    def count(self, tenant: str | None = None) -> int:
        query = {"term": {"tenant": tenant}} if tenant is not None else {"match_all": {}}
        return int(self.client.count(index=self.index_name, body={"query": query})["count"])

    def get_chunk(self, chunk_id: str) -> Chunk | None:
        try:
            found = self.client.get(index=self.index_name, id=chunk_id, params={"_source_excludes": "vector"})
        except NotFoundError:
            return None
        return _chunk(found["_source"]) if found.get("found") else None

    def current_index(self) -> str:
        """The concrete index the alias points at now (the alias name itself for a pre-versioning index)."""
        try:
            found = self.client.indices.get_alias(name=self.index_name)
        except NotFoundError:
            return self.index_name
        return sorted(found, key=_version_of)[-1]

    def reindex_to_new_version(self, *, delete_old: bool = True, timeout_s: float = 3600.0) -> str:
        """Copy every chunk into a new index built from the current template (``-v<N+1>``), then
        swap the alias to it in one atomic step; returns the new index's name.

        Queries keep working throughout (they read the old index until the swap). Writes made
        while the copy runs may not reach the new index: pause ingestion (stop the ingest
        consumers; events wait on their topic) for the duration, or re-ingest afterwards.
        """
        old = self.current_index()
        new = f"{self.index_name}-v{self._latest_version() + 1}"
        self.client.indices.create(index=new, body=self._template())
        try:
            result = self.client.reindex(body={"source": {"index": old}, "dest": {"index": new}},
                                         params={"refresh": "true", "wait_for_completion": "true",
                                                 "timeout": f"{int(timeout_s)}s"},
                                         request_timeout=timeout_s)
            if result.get("failures"):
                raise RuntimeError(f"reindexing {old!r} into {new!r} failed: {result['failures'][:3]}")
            copied, expected = self._count(new), self._count(old)
            if copied != expected:
                raise RuntimeError(f"reindexing {old!r} into {new!r} copied {copied} of {expected} chunks; "
                                   "was something writing? pause ingestion and retry")
        except Exception:
            self.client.indices.delete(index=new, params={"ignore_unavailable": "true"})
            raise
        if old == self.index_name:  # a pre-versioning index: the alias takes its name in the same step
            actions: list[dict[str, Any]] = [{"add": {"index": new, "alias": self.index_name, "is_write_index": True}},
                                             {"remove_index": {"index": old}}]
        else:
            actions = [{"remove": {"index": old, "alias": self.index_name}},
                       {"add": {"index": new, "alias": self.index_name, "is_write_index": True}}]
        self.client.indices.update_aliases(body={"actions": actions})
        if delete_old and old != self.index_name:
            self.client.indices.delete(index=old, params={"ignore_unavailable": "true"})
        return new

    def drop_index(self) -> None:
        """Delete this backend's indices, every version and every tenant; for tests and rebuilds."""
        names = set(self.client.indices.get(index=f"{self.index_name}-v*", params={"expand_wildcards": "all"}))
        if self.client.indices.exists(index=self.index_name):
            names.add(self.current_index())
        for name in sorted(names):
            self.client.indices.delete(index=name, params={"ignore_unavailable": "true"})

    def close(self) -> None:
        self.client.close()

    # -- internals -----------------------------------------------------------------------------

    def _ensure_index(self) -> None:
        if not self.client.indices.exists(index=self.index_name):
            first = f"{self.index_name}-v1"
            body = {**self._template(), "aliases": {self.index_name: {"is_write_index": True}}}
            # Workers starting together race to create it; the loser's 400 is expected, so it is
            # asked for (no client WARNING) and only an error of another kind is raised.
            reply = self.client.indices.create(index=first, body=body, params={"ignore": 400})
            error = reply.get("error") if isinstance(reply, dict) else None
            if error:
                if not isinstance(error, dict) or error.get("type") != "resource_already_exists_exception":
                    raise RequestError(400, str(error.get("type") if isinstance(error, dict) else error), reply)
                log.debug("index already created by another process", index=first)
        self._check_dimension()

    def _template(self) -> dict[str, Any]:
        return index_template(self.dimension, ef_search=self.ef_search, k1=self.k1, b=self.b)

    def _latest_version(self) -> int:
        names = self.client.indices.get(index=f"{self.index_name}-v*", params={"expand_wildcards": "all"})
        return max((_version_of(n) for n in names), default=0)

    def _count(self, index: str) -> int:
        self.client.indices.refresh(index=index)
        return int(self.client.count(index=index)["count"])

    def _check_dimension(self) -> None:
        mapping = self.client.indices.get_mapping(index=self.index_name)
        props = next(iter(mapping.values()))["mappings"].get("properties", {})
        found = props.get("vector", {}).get("dimension")
        if found != self.dimension:
            raise ValueError(f"OpenSearch index {self.index_name!r} at {redact_url(self.url)} has vector dimension {found}, "
                             f"not {self.dimension}; use another index prefix or drop the index")

    def _chunk_ids_of(self, documents: Sequence[DocumentChunks]) -> list[str]:
        """Ids of every chunk the index holds for these documents, in one scroll."""
        query = {"bool": {"should": [_document_filter(d.tenant, d.document_id) for d in documents], "minimum_should_match": 1}}
        return [h["_id"] for h in helpers.scan(self.client, index=self.index_name, _source=False, query={"query": query})]

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
        vectors = checked_vectors(document_id, tenant, chunks, vectors, self.dimension)
        return np.stack([_normalise(v) for v in vectors]) if len(vectors) else vectors


def index_template(dimension: int, *, ef_search: int = 100, k1: float = 1.2, b: float = 0.75) -> dict[str, Any]:
    """Settings and mappings of one index version (``SCHEMA_VERSION``)."""
    return {
        "settings": {
            "index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0,
                      "knn.algo_param.ef_search": ef_search,
                      "similarity": {"default": {"type": "BM25", "k1": k1, "b": b}}},
            "analysis": _ANALYSIS,
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": {"ragloop_schema": SCHEMA_VERSION},
            "properties": {
                "chunk_id": {"type": "keyword"},
                "tenant": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "access": {"type": "keyword"},
                "ordinal": {"type": "integer"},
                "title": {"type": "text", "analyzer": "ragloop_english", "copy_to": "content"},
                "text": {"type": "text", "analyzer": "ragloop_english", "copy_to": "content"},
                "content": {"type": "text", "analyzer": "ragloop_english",
                            "fields": {"cjk": {"type": "text", "analyzer": "ragloop_cjk"}}},
                "metadata": {"type": "object", "enabled": False},
                "vector": {"type": "knn_vector", "dimension": dimension,
                           "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
                                      "parameters": {"m": 16, "ef_construction": 128}}},
            },
        },
    }


def _visibility_filter(tenant: str, principals: Sequence[str] | None) -> list[dict[str, Any]]:
    """The tenant's chunks that are public (no access list) or list one of ``principals``."""
    public: dict[str, Any] = {"bool": {"must_not": [{"exists": {"field": "access"}}]}}
    readable = [public]
    if principals:
        readable.append({"terms": {"access": sorted(set(principals))}})
    return [{"term": {"tenant": tenant}}, {"bool": {"should": readable, "minimum_should_match": 1}}]


def _version_of(index: str) -> int:
    found = _VERSION.search(index)
    return int(found.group(1)) if found else 0


def _document_filter(tenant: str, document_id: str) -> dict[str, Any]:
    return {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"document_id": document_id}}]}}


def _chunk(source: dict[str, Any]) -> Chunk:
    return Chunk(id=source["chunk_id"], document_id=source["document_id"], tenant=source["tenant"],
                 ordinal=source["ordinal"], text=source["text"], title=source.get("title", ""),
                 metadata=source.get("metadata") or {}, access=source.get("access") or [])


def _normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).astype(np.float32)
