"""Back-pressure for document submissions, as chat has it (`TaskService._check_capacity`).

Accepting a document the workers cannot reach for hours only strands it: above the backlog limits
(queued or indexing documents, overall and per tenant) a submission is refused with `QueueFull`,
which the gateway answers 503 + Retry-After, before anything is written or published.
"""

from __future__ import annotations

import asyncio

from indexing.document_store import DocumentStore
from schemas.settings import Settings
from streams.tasks import QueueFull


async def check_document_capacity(store: DocumentStore, settings: Settings, tenant: str) -> None:
    total, mine = await asyncio.to_thread(store.backlog, tenant)
    limits, retry_after_s = settings.ingest, settings.tasks.retry_after_s
    if total >= limits.max_queued:
        raise QueueFull(f"{total} documents are waiting to be indexed (limit {limits.max_queued}, RAGLOOP_INGEST_MAX_QUEUED); "
                        "retry later", retry_after_s)
    if mine >= limits.max_queued_per_tenant:
        raise QueueFull(f"tenant {tenant!r} has {mine} documents waiting to be indexed (limit {limits.max_queued_per_tenant}, "
                        "RAGLOOP_INGEST_MAX_QUEUED_PER_TENANT); retry later", retry_after_s)
