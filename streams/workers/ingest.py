"""Ingest role: `docs.ingest` / `docs.delete` → index, reporting `docs.progress` at every stage.

Stages: parsed → chunked → embedded → indexed (or failed with the reason). A document that can
never load (unsupported, corrupt, too large, forbidden URL) fails at once without retries; a
fetch that may succeed later (timeout, 5xx) is retried and then dead-lettered.
"""

from __future__ import annotations

import asyncio
import base64

from indexing.loaders import LoadError, load_bytes
from indexing.types import SourceDocument
from indexing.url_fetch import load_url
from schemas.events import DocumentDelete, DocumentIndexed, DocumentIngest, DocumentProgress, ProgressStage
from streams.consumer import EventConsumer, PermanentError
from streams.metrics import CHUNKS_INDEXED, DOCUMENTS_INDEXED
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

GROUP = "ragloop.ingest"


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    store, settings = services.store, services.settings

    async def progress(event: DocumentIngest | DocumentDelete, stage: ProgressStage, reason: str | None = None, **counts: int) -> None:
        await publisher.publish(DocumentProgress(tenant=event.tenant, document_id=event.document_id, stage=stage, reason=reason,
                                                 counts=counts, trace=event.trace))

    def load(event: DocumentIngest) -> SourceDocument:
        common = {"tenant": event.tenant, "document_id": event.document_id, "metadata": event.metadata, "access": event.access}
        try:
            if event.url is not None:
                return load_url(event.url, title=event.title or None, max_bytes=settings.fetch_max_bytes,
                                timeout_s=settings.fetch_timeout_s, allow_private=settings.fetch_allow_private, **common)
            if event.content_b64 is not None:
                return load_bytes(base64.b64decode(event.content_b64, validate=True), media_type=event.media_type, filename=event.filename,
                                  source=event.source, title=event.title or None, max_bytes=settings.fetch_max_bytes, **common)
        except LoadError as error:
            if getattr(error, "retryable", False):
                raise
            raise PermanentError(str(error)) from error
        except ValueError as error:  # bad base64
            raise PermanentError(f"content_b64 is not valid base64: {error}") from error
        return SourceDocument(id=event.document_id, tenant=event.tenant, title=event.title, text=event.text or "",
                              source=event.source, metadata=event.metadata, access=event.access)

    async def ingest(event: DocumentIngest) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, title=event.title, status="indexing", error=None)
        document = await asyncio.to_thread(load, event)
        await progress(event, "parsed", chars=len(document.text))

        def on_stage(stage: str, counts: dict[str, int]) -> None:  # called from the indexing thread
            asyncio.run_coroutine_threadsafe(progress(event, stage, **counts), loop).result()  # type: ignore[arg-type]

        report = await asyncio.to_thread(services.pipeline.ingest, document, on_stage=on_stage)
        await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, title=document.title, status="indexed",
                                chunks=report.chunks, error=None)
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
