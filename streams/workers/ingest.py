"""Ingest role: `docs.ingest` / `docs.delete` → index, reporting `docs.progress` at every stage.

Stages: parsed → chunked → embedded → indexed (or failed with the reason). A document that can
never load (unsupported, corrupt, too large, forbidden URL) fails at once without retries; a
fetch that may succeed later (timeout, 5xx) is retried and then dead-lettered.

Throughput: the documents already waiting on `docs.ingest` (up to `RAGLOOP_INGEST_BATCH`) are
loaded, embedded in full batches and written to the index in one request, so a stream of small
documents runs at nearly the raw embedder's speed instead of paying one index refresh each. A
document that fails in a batch is retried on its own; its neighbours are not held back. The image
documents of a batch are loaded together, so CLIP encodes them in batches too (one image at a time
ran at 0.13x of raw CLIP encoding; see benchmarks/README.md).

Large documents: one above `RAGLOOP_INGEST_LARGE_BYTES` would hold every document behind it in
its partition, so it is moved to `docs.ingest.large` (same key, same event) and indexed there by
a consumer of its own, while the small ones keep flowing. Later events for a document that is on
that lane follow it there, so a document's events still apply in order.

Deletes: `docs.delete` is another topic, so a delete may be handled before, during or after an
ingest accepted before it. The document row orders them by acceptance time (see
indexing/document_store.py): an ingest reads the delete mark before it writes and marks itself
indexed only if no delete ran meanwhile; one that lost to a delete removes what it wrote, one
interrupted by an older delete is indexed again. An ingest accepted after the delete indexes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from indexing.document_store import DeleteMark, Indexed
from indexing.loaders import LoadError
from indexing.loaders.ingest_event import is_image_event, load_image_events, load_ingest_event
from indexing.pipeline import IngestStage
from indexing.types import SourceDocument
from indexing.url_fetch import trusted_context
from schemas.events import DocumentDelete, DocumentIndexed, DocumentIngest, DocumentProgress, ProgressStage
from streams.consumer import BatchOutcome, EventConsumer, PermanentError
from streams.executors import FETCH, run_in
from streams.metrics import CHUNKS_INDEXED, DOCUMENTS_INDEXED
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

log = structlog.get_logger(__name__)
GROUP = "ragloop.ingest"
# Its own consumer group: the processed-event ledger is per group, and the lane receives the very
# event the main consumer has just recorded as handled (by moving it).
LARGE_GROUP = "ragloop.ingest.large"
LARGE_LANE = TOPICS["docs.ingest.large"]


def inline_bytes(event: DocumentIngest) -> int:
    """Size of the body carried in the event itself (0 for a URL, known only once fetched)."""
    if event.text is not None:
        return len(event.text.encode("utf-8"))
    if event.content_b64 is not None:
        return len(event.content_b64) * 3 // 4
    return 0


def byte_bounded(events: list[DocumentIngest], limit: int) -> list[list[DocumentIngest]]:
    """The batch in order, cut into groups of at most `limit` inline bytes (a bigger event is a group
    of its own): `RAGLOOP_INGEST_BATCH` bounds how many documents are held at once, this how much."""
    groups: list[list[DocumentIngest]] = []
    size = 0
    for event in events:
        if not groups or size + inline_bytes(event) > limit:
            groups.append([])
            size = 0
        groups[-1].append(event)
        size += inline_bytes(event)
    return groups


class StagePump:
    """Carries stage reports from the indexing thread to the event loop, in order, without making
    the thread wait for each publish: embedding goes on while progress events are being sent."""

    def __init__(self, send: Callable[[str, IngestStage, dict[str, int]], Awaitable[None]]) -> None:
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, IngestStage, dict[str, int]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    def report(self, document: SourceDocument, stage: IngestStage, counts: dict[str, int]) -> None:
        """The pipeline's ``on_stage``; called from the indexing thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (document.id, stage, dict(counts)))

    async def close(self) -> None:
        """Wait until every report so far is published (raises if one could not be)."""
        self._queue.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            await self._send(*item)


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    store, settings = services.stores.documents, services.settings
    images = services.images  # CLIP loads on the first image document, not at start
    trust = trusted_context(settings.ingest.fetch_ca_file)

    async def progress(event: DocumentIngest | DocumentDelete, stage: ProgressStage, reason: str | None = None, **counts: int) -> None:
        await publisher.publish(DocumentProgress(tenant=event.tenant, document_id=event.document_id, stage=stage, reason=reason,
                                                 counts=counts, trace=event.trace))

    def load(event: DocumentIngest) -> SourceDocument:
        try:
            return load_ingest_event(event, max_bytes=settings.ingest.fetch_max_bytes, timeout_s=settings.ingest.fetch_timeout_s,
                                     allow_private=settings.ingest.fetch_allow_private, images=images, verify=trust)
        except LoadError as error:
            if getattr(error, "retryable", False):
                raise
            raise PermanentError(str(error)) from error

    def forget(tenant: str, document_id: str) -> int:
        """Remove a document's chunks, image vectors and the stored images only it holds; returns the chunks removed.
        Without CLIP its images (generated ones) are still in the store and are released there."""
        removed = services.pipeline.delete(tenant, document_id)
        if images.enabled:  # even in a process that has not ingested an image since it started
            images.get().delete_document(tenant, document_id)
        else:
            services.image_store.release_document(tenant, document_id)
        return removed

    def load_images(events: list[DocumentIngest]) -> list[SourceDocument | Exception]:
        return [PermanentError(str(outcome)) if isinstance(outcome, LoadError) and not getattr(outcome, "retryable", False) else outcome
                for outcome in load_image_events(events, images=images)]

    async def move_to_large_lane(event: DocumentIngest, size: int) -> None:
        entry = await asyncio.to_thread(store.enter_large_lane, event.document_id, event.event_id)
        if entry == "done":
            return  # a redelivered move whose lane work is already done: re-queueing would undo its status
        if entry == "entered":
            await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, title=event.title, status="queued", error=None)
        await publisher.publish(event, topic=LARGE_LANE.name)  # again when `waiting`: the move may have died before it
        if entry == "entered":
            await progress(event, "queued", "large document: indexed on docs.ingest.large", bytes=size)

    async def not_deleted(events: list[DocumentIngest]) -> tuple[list[DocumentIngest], dict[str, DeleteMark]]:
        """The events no delete accepted after them has beaten yet, and the delete marks they saw."""
        marks = await asyncio.to_thread(store.delete_marks, [e.document_id for e in events])
        alive, lost = [], []
        for event in events:
            if marks[event.document_id].beats(event.occurred_at):
                log.info("ingest skipped: the document was deleted after it was accepted", document_id=event.document_id,
                         event_id=event.event_id)
                lost.append(event)
            else:
                alive.append(event)
        if lost:  # an earlier attempt may have marked it `indexing` (and written) after the delete ended, then failed
            settled = await asyncio.to_thread(store.skip_lost, [e.document_id for e in lost])
            for event in (e for e in lost if e.document_id in settled):
                await asyncio.to_thread(forget, event.tenant, event.document_id)
        return alive, marks

    async def start(events: list[DocumentIngest]) -> list[SourceDocument | Exception]:
        """Mark the documents as indexing and load them side by side (URL fetches overlap)."""
        await asyncio.to_thread(store.upsert_documents, [(e.document_id, e.tenant, {"title": e.title, "status": "indexing", "error": None,
                                                                                 "access": e.access})
                                                         for e in events])
        # Images are loaded together, so CLIP encodes them in batches rather than one by one.
        pictures = [e for e in events if is_image_event(e)]
        texts = [e for e in events if not is_image_event(e)]
        loading_pictures = asyncio.create_task(asyncio.to_thread(load_images, pictures))
        # On the fetch pool: slow URLs must not take the default pool's threads from store calls and the API.
        loaded_texts = await asyncio.gather(*(run_in(FETCH, settings.ingest.fetch_threads, load, e) for e in texts), return_exceptions=True)
        try:
            loaded_pictures: list[object] = list(await loading_pictures)
        except Exception as error:  # noqa: BLE001 — e.g. the image index could not be written: each image is retried
            loaded_pictures = [error] * len(pictures)
        by_event = dict(zip([e.event_id for e in texts], loaded_texts)) | dict(zip([e.event_id for e in pictures], loaded_pictures))
        outcomes: list[SourceDocument | Exception] = []
        for outcome in (by_event[e.event_id] for e in events):
            outcomes.append(outcome if isinstance(outcome, (SourceDocument, Exception)) else RuntimeError(repr(outcome)))
        await asyncio.gather(*(progress(e, "parsed", chars=len(d.text)) for e, d in zip(events, outcomes) if isinstance(d, SourceDocument)))
        return outcomes

    async def announce(event: DocumentIngest, chunk_ids: list[str]) -> None:
        await progress(event, "indexed", chunks=len(chunk_ids))
        await publisher.publish(DocumentIndexed.of(event, chunk_ids))

    async def index(pairs: list[tuple[DocumentIngest, SourceDocument]], marks: dict[str, DeleteMark]) -> BatchOutcome:
        """Write the chunks, then mark each document indexed unless a delete ran meanwhile;
        returns the events to index again (an older delete interrupted them)."""
        events = {document.id: event for event, document in pairs}
        pump = StagePump(lambda document_id, stage, counts: progress(events[document_id], stage, reason=None, **counts))
        started = time.perf_counter()
        try:
            reports = await asyncio.to_thread(services.pipeline.ingest_many, [d for _, d in pairs], on_stage=pump.report)
        finally:
            await pump.close()
        log.info("documents indexed", documents=len(reports), chunks=sum(r.chunks for r in reports),
                 seconds=round(time.perf_counter() - started, 3))
        outcomes = await asyncio.to_thread(store.finish_indexing, [
            Indexed(e.document_id, e.occurred_at, marks[e.document_id], {"title": d.title, "chunks": r.chunks, "error": None})
            for (e, d), r in zip(pairs, reports)])
        won = [(e, r) for (e, _), r, outcome in zip(pairs, reports, outcomes) if outcome == "indexed"]
        for (event, _), outcome in zip(pairs, outcomes):
            if outcome == "deleted":  # it lost to a delete that may have run before it wrote: leave nothing
                await asyncio.to_thread(forget, event.tenant, event.document_id)
                log.info("ingest lost to a later delete; its chunks are removed", document_id=event.document_id, event_id=event.event_id)
        DOCUMENTS_INDEXED.inc(len(won))
        CHUNKS_INDEXED.inc(sum(r.chunks for _, r in won))
        await asyncio.gather(*(announce(event, report.chunk_ids) for event, report in won))
        return {e.event_id: RuntimeError(f"document {e.document_id}: an earlier delete ran while it was indexed; indexing it again")
                for (e, _), outcome in zip(pairs, outcomes) if outcome == "interrupted"}

    async def ingest(event: DocumentIngest) -> None:
        failures = await ingest_many([event])
        if failures:
            raise failures[event.event_id]

    async def ingest_many(events: list[DocumentIngest]) -> BatchOutcome:
        """Index the batch; returns the events that failed (each is retried on its own)."""
        failures: BatchOutcome = {}
        following = await asyncio.to_thread(store.on_large_lane, [e.document_id for e in events])
        small: list[DocumentIngest] = []
        for event in events:
            if event.document_id in following or inline_bytes(event) > settings.ingest.large_bytes:
                await move_to_large_lane(event, inline_bytes(event))
            else:
                small.append(event)
        small, marks = await not_deleted(small)
        for group in byte_bounded(small, settings.ingest.batch_bytes):
            pairs: list[tuple[DocumentIngest, SourceDocument]] = []
            for event, outcome in zip(group, await start(group)):
                if isinstance(outcome, Exception):
                    failures[event.event_id] = outcome
                elif (size := len(outcome.text.encode("utf-8"))) > settings.ingest.large_bytes:
                    await move_to_large_lane(event, size)
                else:
                    pairs.append((event, outcome))
            if pairs:
                failures |= await index(pairs, marks)
        return failures

    async def ingest_large(event: DocumentIngest) -> None:
        alive, marks = await not_deleted([event])
        if alive:
            [document] = await start([event])
            if isinstance(document, Exception):
                raise document
            if interrupted := await index([(event, document)], marks):
                raise interrupted[event.event_id]
        await asyncio.to_thread(store.leave_large_lane, event.document_id, event.event_id)

    async def delete(event: DocumentDelete) -> None:
        """Tombstone first, then remove, then release: an ingest that wrote in between notices."""
        remove = await asyncio.to_thread(store.begin_delete, event.document_id, event.tenant, event.occurred_at)
        removed = await asyncio.to_thread(forget, event.tenant, event.document_id) if remove else 0
        await asyncio.to_thread(store.end_delete, event.document_id, event.occurred_at)
        await progress(event, "deleted", chunks=removed)

    async def failed(event: DocumentIngest | DocumentDelete, reason: str) -> None:
        await asyncio.to_thread(store.upsert_document, event.document_id, event.tenant, status="failed", error=reason)
        await progress(event, "failed", reason)

    async def failed_large(event: DocumentIngest, reason: str) -> None:
        await failed(event, reason)
        await asyncio.to_thread(store.leave_large_lane, event.document_id, event.event_id)

    return [
        EventConsumer(TOPICS["docs.ingest"], GROUP, ingest, on_dead_letter=failed, handle_many=ingest_many, max_batch=settings.ingest.batch),
        EventConsumer(LARGE_LANE, LARGE_GROUP, ingest_large, on_dead_letter=failed_large, max_processing_s=3600.0),
        EventConsumer(TOPICS["docs.delete"], GROUP, delete, on_dead_letter=failed),
    ]
