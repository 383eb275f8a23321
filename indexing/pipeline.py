"""Turn a document into indexed chunks: chunk → embed (batched) → replace in the backend.

Replacing per document (rather than appending) is what makes re-ingesting safe: an edited
document loses the chunks that no longer exist, an unchanged one is rewritten with the same
content-hash ids, and a replayed event changes nothing.

    >>> pipeline = IngestPipeline(Chunker(), TextEmbedder(), backend)          # doctest: +SKIP
    >>> pipeline.ingest(SourceDocument(id="faq", tenant="acme", text="..."))   # doctest: +SKIP
    IngestReport(document_id='faq', tenant='acme', chunks=3, chunk_ids=[...])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from pydantic import BaseModel

from indexing.backends.base import SearchBackend
from indexing.chunking import Chunker
from indexing.types import Chunk, Embedder, SourceDocument


StageCallback = Callable[[str, dict[str, int]], None]


class IngestReport(BaseModel):
    document_id: str
    tenant: str
    chunks: int
    chunk_ids: list[str]


class IngestPipeline:
    """Chunks, embeds and indexes documents; one document is one backend write."""

    def __init__(self, chunker: Chunker, embedder: Embedder, backend: SearchBackend, *,
                 batch_size: int = 64) -> None:
        self.chunker = chunker
        self.embedder = embedder
        self.backend = backend
        self.batch_size = batch_size

    def ingest(self, doc: SourceDocument, *, on_stage: StageCallback | None = None) -> IngestReport:
        """Ingest one document; `on_stage(stage, counts)` hears `chunked` and `embedded` as they finish,
        so a long document reports progress before it is searchable."""
        chunks = self.chunker.split(doc)
        if on_stage:
            on_stage("chunked", {"chunks": len(chunks)})
        vectors = self._embed([c.embedding_text() for c in chunks])
        if on_stage:
            on_stage("embedded", {"chunks": len(chunks)})
        self.backend.replace_document(doc.id, doc.tenant, chunks, vectors)
        return IngestReport(document_id=doc.id, tenant=doc.tenant, chunks=len(chunks), chunk_ids=[c.id for c in chunks])

    def ingest_many(self, docs: Iterable[SourceDocument]) -> list[IngestReport]:
        """Ingest several documents, embedding their chunks together in full batches (much
        faster than one small batch per document for short documents)."""
        reports: list[IngestReport] = []
        pending: list[tuple[SourceDocument, list[Chunk]]] = []
        pending_chunks = 0
        for doc in docs:
            chunks = self.chunker.split(doc)
            pending.append((doc, chunks))
            pending_chunks += len(chunks)
            if pending_chunks >= self.batch_size:
                reports += self._write(pending)
                pending, pending_chunks = [], 0
        if pending:
            reports += self._write(pending)
        return reports

    def delete(self, tenant: str, document_id: str) -> int:
        return self.backend.delete_document(tenant, document_id)

    def _write(self, batch: list[tuple[SourceDocument, list[Chunk]]]) -> list[IngestReport]:
        texts = [c.embedding_text() for _, chunks in batch for c in chunks]
        vectors = self._embed(texts)
        reports: list[IngestReport] = []
        offset = 0
        for doc, chunks in batch:
            rows = vectors[offset:offset + len(chunks)]
            offset += len(chunks)
            self.backend.replace_document(doc.id, doc.tenant, chunks, rows)
            reports.append(IngestReport(document_id=doc.id, tenant=doc.tenant, chunks=len(chunks),
                                        chunk_ids=[c.id for c in chunks]))
        return reports

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        parts = [self.embedder.embed(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts).astype(np.float32, copy=False)
