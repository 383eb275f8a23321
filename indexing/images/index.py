"""The index of image vectors (CLIP embeddings), next to the chunk index on the same backend.

Each stored image is one entry: its CLIP image vector with tenant, access list, caption/alt text,
source and document id. Queries are always filtered to one tenant and to the principals' access
inside the query, before the top-k cut, by the same rule as chunks (indexing/backends/base.py):
an empty access list is the whole tenant's.

- `EmbeddedImageIndex`: a SQLite table (WAL) read per query with an exact cosine product, so the
  API and the ingest worker can share the file from two processes.
- `OpenSearchImageIndex`: its own index `<prefix>-images-d<dim>` with a `knn_vector` field sized to
  the CLIP model, so changing the CLIP architecture never mixes vectors of two spaces.

    index = open_image_index(settings.search.url, home=settings.home, dimension=clip.dimension)
    index.put([ImageEntry(...)], vectors)
    index.search(tenant="acme", vector=clip.encode_texts(["a red bike"])[0], k=5)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, Field


class ImageEntry(BaseModel):
    """What the index keeps about an image besides its vector."""

    id: str
    tenant: str
    document_id: str | None = None
    caption: str = ""
    source: str | None = None
    media_type: str = ""
    access: list[str] = Field(default_factory=list)


class ImageHit(BaseModel):
    image: ImageEntry
    score: float

    @property
    def url(self) -> str:
        return f"/v1/images/{self.image.id}"


class ImageIndex(Protocol):
    dimension: int

    def put(self, entries: Sequence[ImageEntry], vectors: np.ndarray) -> None:
        """Upsert entries (row i of `vectors` is entry i); idempotent."""

    def search(self, *, tenant: str, vector: np.ndarray, k: int, principals: Sequence[str] | None = None,
               exclude: str | None = None) -> list[ImageHit]:
        """Top-`k` images of `tenant` visible to `principals` by cosine similarity, best first (without `exclude`)."""

    def delete_document(self, tenant: str, document_id: str) -> int:
        """Remove the images a document brought; returns how many."""

    def set_document(self, tenant: str, image_id: str, document_id: str) -> bool:
        """Name another document that holds the image (its first went, the image stays); False when it is not indexed."""

    def close(self) -> None: ...


def _checked(entries: Sequence[ImageEntry], vectors: np.ndarray, dimension: int) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(entries), dimension):
        raise ValueError(f"image vectors have shape {vectors.shape}; expected ({len(entries)}, {dimension})")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _visible(entry: ImageEntry, principals: Sequence[str] | None) -> bool:
    return not entry.access or bool(set(entry.access) & set(principals or ()))


class EmbeddedImageIndex:
    """Image vectors in one SQLite file; see the module docstring."""

    def __init__(self, path: Path, *, dimension: int) -> None:
        self.dimension = dimension
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS images (id TEXT NOT NULL, tenant TEXT NOT NULL, document_id TEXT, "
                             "entry TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (tenant, id))")
            self._db.execute("CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO settings VALUES ('dimension', ?)", (str(dimension),))
            found = int(self._db.execute("SELECT value FROM settings WHERE key='dimension'").fetchone()[0])
        if found != dimension:
            raise ValueError(f"image index {path} holds {found}-d vectors, not {dimension}: the CLIP model changed; "
                             "move the file away and ingest the images again")

    def put(self, entries: Sequence[ImageEntry], vectors: np.ndarray) -> None:
        rows = [(e.id, e.tenant, e.document_id, e.model_dump_json(), v.tobytes())
                for e, v in zip(entries, _checked(entries, vectors, self.dimension))]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?)", rows)

    def search(self, *, tenant: str, vector: np.ndarray, k: int, principals: Sequence[str] | None = None,
               exclude: str | None = None) -> list[ImageHit]:
        with self._lock:
            rows = self._db.execute("SELECT entry, vector FROM images WHERE tenant = ?", (tenant,)).fetchall()
        entries = [ImageEntry.model_validate_json(entry) for entry, _ in rows]
        keep = [i for i, e in enumerate(entries) if _visible(e, principals) and e.id != exclude]
        if not keep or k <= 0:
            return []
        matrix = np.stack([np.frombuffer(rows[i][1], dtype=np.float32) for i in keep])
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [ImageHit(image=entries[keep[i]], score=float(scores[i])) for i in order]

    def delete_document(self, tenant: str, document_id: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM images WHERE tenant = ? AND document_id = ?", (tenant, document_id)).rowcount

    def set_document(self, tenant: str, image_id: str, document_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT entry FROM images WHERE tenant = ? AND id = ?", (tenant, image_id)).fetchone()
            if row is None:
                return False
            entry = ImageEntry.model_validate_json(row[0]).model_copy(update={"document_id": document_id})
            self._db.execute("UPDATE images SET document_id = ?, entry = ? WHERE tenant = ? AND id = ?",
                             (document_id, entry.model_dump_json(), tenant, image_id))
            return True

    def close(self) -> None:
        self._db.close()


class OpenSearchImageIndex:
    """Image vectors in an OpenSearch k-NN index sized to the CLIP model; see the module docstring."""

    def __init__(self, url: str, *, dimension: int, index_prefix: str = "ragloop-chunks", client: Any = None) -> None:
        from opensearchpy import OpenSearch

        self.dimension = dimension
        self.index_name = f"{index_prefix}-images-d{dimension}"
        self.client = client or OpenSearch(hosts=[url], timeout=30)
        if not self.client.indices.exists(index=self.index_name):
            self.client.indices.create(index=self.index_name, body=image_index_template(dimension), params={"ignore": 400})

    def put(self, entries: Sequence[ImageEntry], vectors: np.ndarray) -> None:
        from opensearchpy import helpers

        actions = [{"_op_type": "index", "_index": self.index_name, "_id": f"{e.tenant}\0{e.id}",
                    "_source": {**e.model_dump(), "vector": v.tolist()}}
                   for e, v in zip(entries, _checked(entries, vectors, self.dimension))]
        if actions:
            helpers.bulk(self.client, actions, refresh="true")

    def search(self, *, tenant: str, vector: np.ndarray, k: int, principals: Sequence[str] | None = None,
               exclude: str | None = None) -> list[ImageHit]:
        if k <= 0:
            return []
        public: dict[str, Any] = {"bool": {"must_not": [{"exists": {"field": "access"}}]}}
        readable = [public, *([{"terms": {"access": sorted(set(principals))}}] if principals else [])]
        filters: dict[str, Any] = {"bool": {"filter": [{"term": {"tenant": tenant}},
                                                       {"bool": {"should": readable, "minimum_should_match": 1}}],
                                            "must_not": [{"term": {"id": exclude}}] if exclude else []}}
        body = {"size": k, "_source": {"excludes": ["vector"]},
                "query": {"knn": {"vector": {"vector": np.asarray(vector, dtype=np.float32).tolist(), "k": k, "filter": filters}}}}
        hits = self.client.search(index=self.index_name, body=body)["hits"]["hits"]
        # lucene cosinesimil scores are (1 + cos) / 2: back to the cosine the embedded index reports
        return [ImageHit(image=ImageEntry.model_validate(h["_source"]), score=2.0 * float(h["_score"]) - 1.0) for h in hits[:k]]

    def delete_document(self, tenant: str, document_id: str) -> int:
        query = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"document_id": document_id}}]}}
        reply = self.client.delete_by_query(index=self.index_name, body={"query": query}, params={"refresh": "true", "conflicts": "proceed"})
        return int(reply.get("deleted", 0))

    def set_document(self, tenant: str, image_id: str, document_id: str) -> bool:
        query = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"id": image_id}}]}}
        script = {"source": "ctx._source.document_id = params.document_id", "params": {"document_id": document_id}}
        reply = self.client.update_by_query(index=self.index_name, body={"query": query, "script": script},
                                            params={"refresh": "true", "conflicts": "proceed"})
        return int(reply.get("updated", 0)) > 0

    def drop(self) -> None:
        self.client.indices.delete(index=self.index_name, params={"ignore": 404})

    def close(self) -> None:
        self.client.close()


def image_index_template(dimension: int) -> dict[str, Any]:
    return {
        "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
        "mappings": {"dynamic": "strict", "properties": {
            "id": {"type": "keyword"}, "tenant": {"type": "keyword"}, "document_id": {"type": "keyword"},
            "access": {"type": "keyword"}, "caption": {"type": "text"}, "source": {"type": "keyword"},
            "media_type": {"type": "keyword"},
            "vector": {"type": "knn_vector", "dimension": dimension,
                       "method": {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
                                  "parameters": {"m": 16, "ef_construction": 128}}}}},
    }


def open_image_index(search_url: str, *, home: Path, dimension: int, index_prefix: str = "ragloop-chunks") -> ImageIndex:
    """The image index on the backend the search URL names (embedded: home/index/images.sqlite)."""
    scheme = urlsplit(search_url).scheme.lower()
    if scheme == "embedded":
        return EmbeddedImageIndex(Path(home).expanduser() / "index" / "images.sqlite", dimension=dimension)
    url = search_url if scheme != "opensearch" else "http://" + search_url.split("://", 1)[1]
    return OpenSearchImageIndex(url, dimension=dimension, index_prefix=index_prefix)
