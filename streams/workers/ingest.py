"""Ingest role: `docs.ingest` / `docs.delete` → index, with `docs.progress` along the way."""

from __future__ import annotations

import asyncio

from indexing.types import SourceDocument
from schemas.events import DocumentDelete, DocumentIndexed, DocumentIngest, DocumentProgress, ProgressStage
from streams.consumer import EventConsumer
from streams.metrics import CHUNKS_INDEXED, DOCUMENTS_INDEXED
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

GROUP = "ragloop.ingest"


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    store = services.store

    async def progress(event: DocumentIngest | DocumentDelete, stage: ProgressStage, reason: str | None = None, **counts: int) -> None:
        await publisher.publish(DocumentProgress(tenant=event.tenant, document_id=event.document_id, stage=stage, reason=reason,
                                                 counts=counts, trace=event.trace))

    async def ingest(event: DocumentIngest) -> None:
        await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, title=event.title, status="indexing", error=None)
        document = SourceDocument(id=event.document_id, tenant=event.tenant, title=event.title, text=event.text,
                                  source=event.source, metadata=event.metadata, access=event.access)
        report = await asyncio.to_thread(services.pipeline.ingest, document)
        await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, status="indexed", chunks=report.chunks, error=None)
        DOCUMENTS_INDEXED.inc()
        CHUNKS_INDEXED.inc(report.chunks)
        await progress(event, "indexed", chunks=report.chunks)
        await publisher.publish(DocumentIndexed(tenant=event.tenant, document_id=event.document_id, chunk_ids=report.chunk_ids, trace=event.trace))

    async def delete(event: DocumentDelete) -> None:
        removed = await asyncio.to_thread(services.pipeline.delete, event.tenant, event.document_id)
        await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, status="deleted", chunks=0, error=None)
        await progress(event, "deleted", chunks=removed)

    async def failed(event: DocumentIngest | DocumentDelete, reason: str) -> None:
        await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, status="failed", error=reason)
        await progress(event, "failed", reason)

    return [
        EventConsumer(TOPICS["docs.ingest"], GROUP, ingest, on_dead_letter=failed),
        EventConsumer(TOPICS["docs.delete"], GROUP, delete, on_dead_letter=failed),
    ]
