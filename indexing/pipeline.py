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
from typing import Literal

import numpy as np
from pydantic import BaseModel

from indexing.backends.base import DocumentChunks, SearchBackend
from indexing.chunking import Chunker
from indexing.types import Chunk, Embedder, SourceDocument

IngestStage = Literal["chunked", "embedded"]
StageCallback = Callable[[IngestStage, dict[str, int]], None]
DocumentStageCallback = Callable[[SourceDocument, IngestStage, dict[str, int]], None]


class IngestReport(BaseModel):
    document_id: str
    tenant: str
    chunks: int
    chunk_ids: list[str]


class IngestPipeline:
    """Chunks, embeds and indexes documents.

    ``batch_size`` chunks go through the embedder at once; ``write_chunks`` is how many chunks
    (of several documents) ``ingest_many`` gathers before one backend write, so many small
    documents cost one bulk request and one index refresh rather than one each, while memory
    stays bounded however many documents stream through. A single document with more chunks
    than that is written in slices of ``write_chunks`` (searchable part by part while it is
    written; its old version's leftover chunks go with the first slice).
    """

    def __init__(self, chunker: Chunker, embedder: Embedder, backend: SearchBackend, *,
                 batch_size: int = 64, write_chunks: int = 1024) -> None:
        self.chunker = chunker
        self.embedder = embedder
        self.backend = backend
        self.batch_size = batch_size
        self.write_chunks = write_chunks

    def ingest(self, doc: SourceDocument, *, on_stage: StageCallback | None = None) -> IngestReport:
        """Ingest one document; `on_stage(stage, counts)` hears `chunked` and `embedded` as they finish,
        so a long document reports progress before it is searchable."""
        per_document = (lambda _doc, stage, counts: on_stage(stage, counts)) if on_stage else None
        return self.ingest_many([doc], on_stage=per_document)[0]

    def ingest_many(self, docs: Iterable[SourceDocument], *,
                    on_stage: DocumentStageCallback | None = None) -> list[IngestReport]:
        """Ingest several documents, embedding their chunks together in full batches and writing
        them together (much faster than one small batch and one write per short document).
        `on_stage(doc, stage, counts)` hears each document's `chunked` and `embedded`."""
        reports: list[IngestReport] = []
        pending: list[tuple[SourceDocument, list[Chunk]]] = []
        pending_chunks = 0
        for doc in docs:
            chunks = self.chunker.split(doc)
            if on_stage:
                on_stage(doc, "chunked", {"chunks": len(chunks)})
            if len(chunks) > self.write_chunks:
                reports += self._write_in_slices(doc, chunks, on_stage)
                continue
            pending.append((doc, chunks))
            pending_chunks += len(chunks)
            if pending_chunks >= self.write_chunks:
                reports += self._write(pending, on_stage)
                pending, pending_chunks = [], 0
        if pending:
            reports += self._write(pending, on_stage)
        return reports

    def delete(self, tenant: str, document_id: str) -> int:
        return self.backend.delete_document(tenant, document_id)

    def _write(self, batch: list[tuple[SourceDocument, list[Chunk]]],
               on_stage: DocumentStageCallback | None) -> list[IngestReport]:
        vectors = self._embed([c.embedding_text() for _, chunks in batch for c in chunks])
        writes: list[DocumentChunks] = []
        offset = 0
        for doc, chunks in batch:
            writes.append(DocumentChunks(doc.id, doc.tenant, chunks, vectors[offset:offset + len(chunks)]))
            offset += len(chunks)
            if on_stage:
                on_stage(doc, "embedded", {"chunks": len(chunks)})
        self.backend.replace_documents(writes)
        return [IngestReport(document_id=doc.id, tenant=doc.tenant, chunks=len(chunks), chunk_ids=[c.id for c in chunks])
                for doc, chunks in batch]

    def _write_in_slices(self, doc: SourceDocument, chunks: list[Chunk],
                         on_stage: DocumentStageCallback | None) -> list[IngestReport]:
        """A document bigger than one write: embed and write ``write_chunks`` at a time, so memory
        holds one slice of vectors, and report ``embedded`` with the running count after each."""
        all_ids = frozenset(c.id for c in chunks)
        for start in range(0, len(chunks), self.write_chunks):
            part = chunks[start:start + self.write_chunks]
            vectors = self._embed([c.embedding_text() for c in part])
            self.backend.replace_documents([DocumentChunks(doc.id, doc.tenant, part, vectors, all_ids=all_ids)])
            if on_stage:
                on_stage(doc, "embedded", {"chunks": start + len(part), "total": len(chunks)})
        return [IngestReport(document_id=doc.id, tenant=doc.tenant, chunks=len(chunks), chunk_ids=[c.id for c in chunks])]

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        parts = [self.embedder.embed(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts).astype(np.float32, copy=False)
