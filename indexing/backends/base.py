"""The search backend contract and the helpers every implementation shares (``factory.py`` chooses one).

A backend stores chunks with their vectors and answers BM25 and dense queries, always
filtered to one tenant *inside* the query (so a busy tenant can never starve another out of
a global top-k). Writes are per document and idempotent: ``replace_document`` makes the
index hold exactly the given chunks for that document, which is what at-least-once event
delivery needs.

Access lists: a chunk whose ``access`` list is empty is visible to the whole tenant; a chunk
with a non-empty list is visible only to a query whose ``principals`` share at least one entry
with it. ``principals=None`` (or empty) therefore sees only the tenant's unrestricted chunks —
the safe default for callers that do not know who is asking. Both filters sit inside the query,
before the top-k cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from indexing.types import Chunk, SearchHit


@dataclass(frozen=True)
class DocumentChunks:
    """A document's chunks and their vectors (row i belongs to chunk i).

    Usually ``chunks`` is the whole document. A very large document is written in slices so its
    vectors never sit in memory all at once: then ``all_ids`` names every chunk of the new
    version, and each slice removes only chunks outside it (the old version's leftovers).
    """

    document_id: str
    tenant: str
    chunks: Sequence[Chunk]
    vectors: np.ndarray
    all_ids: frozenset[str] | None = None

    def keep_ids(self) -> set[str]:
        """Chunk ids of this document that must survive the write."""
        return set(self.all_ids) if self.all_ids is not None else {c.id for c in self.chunks}


@runtime_checkable
class SearchBackend(Protocol):
    def replace_document(self, document_id: str, tenant: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Upsert ``chunks`` (row i of ``vectors`` belongs to chunk i) and remove this document's
        other chunks; visible to searches when it returns; idempotent."""

    def replace_documents(self, documents: Sequence[DocumentChunks]) -> None:
        """``replace_document`` for several documents in one write (one transaction, one bulk
        request, one refresh): a batch of small documents costs one round trip, not one each."""

    def delete_document(self, tenant: str, document_id: str) -> int:
        """Remove a document's chunks; returns how many were removed (0 if none)."""

    def search_bm25(self, *, tenant: str, text: str, k: int,
                    principals: Sequence[str] | None = None) -> list[SearchHit]:
        """Top-``k`` chunks of ``tenant`` visible to ``principals``, by BM25 over title and text, best first."""

    def search_dense(self, *, tenant: str, vector: np.ndarray, k: int,
                     principals: Sequence[str] | None = None) -> list[SearchHit]:
        """Top-``k`` chunks of ``tenant`` visible to ``principals``, by cosine similarity to ``vector``, best first."""

    def search_hybrid(self, *, tenant: str, text: str, vector: np.ndarray, k: int,
                      principals: Sequence[str] | None = None) -> tuple[list[SearchHit], list[SearchHit]]:
        """``(search_bm25(...), search_dense(...))`` for one query: the candidates hybrid fusion needs,
        fetched together (one round trip on a remote backend)."""

    def count(self, tenant: str | None = None) -> int:
        """Number of chunks, in one tenant or in all."""

    def get_chunk(self, chunk_id: str) -> Chunk | None:
        """The stored chunk, or None."""

    def close(self) -> None:
        """Release files, connections and threads."""


def checked_vectors(document_id: str, tenant: str, chunks: Sequence[Chunk], vectors: np.ndarray, dimension: int) -> np.ndarray:
    """The rows a backend may store for one document: one float32 row per chunk, every chunk of that
    document and tenant; raises ValueError naming what does not fit."""
    if len(chunks) == 0:
        return np.zeros((0, dimension), dtype=np.float32)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(chunks), dimension):
        raise ValueError(f"vectors have shape {vectors.shape}; expected ({len(chunks)}, {dimension}), one row per chunk")
    for c in chunks:
        if c.document_id != document_id or c.tenant != tenant:
            raise ValueError(f"chunk {c.id} belongs to ({c.tenant!r}, {c.document_id!r}), not to ({tenant!r}, {document_id!r})")
    return vectors


def last_per_document(documents: Sequence[DocumentChunks]) -> list[DocumentChunks]:
    """The batch with only the last write of each (tenant, document): replacing a document twice
    in a row leaves exactly the second version, so applying just that one is the same result."""
    latest = {(d.tenant, d.document_id): d for d in documents}
    return list(latest.values())


def rank_scores(hits: Sequence[SearchHit]) -> list[SearchHit]:
    """The hits, in order, with their scores replaced by their reciprocal rank (1, 1/2, 1/3, …):
    what callers outside the process are shown. A raw BM25 score carries corpus statistics (IDF,
    average length), and on OpenSearch those span every tenant of the index, so a tenant reading
    its scores could learn whether another tenant's documents hold a term; a rank carries only
    the order. (The order itself can still shift with those statistics on a multi-term query:
    README, "Tenant isolation".)"""
    return [SearchHit.model_construct(chunk=hit.chunk, score=1.0 / rank) for rank, hit in enumerate(hits, start=1)]  # built from valid parts

