"""Images role: `images.generate` → render with the configured diffusers pipeline → the one image store
(with the prompt as caption, CLIP-indexed when CLIP is configured) → the job settled with the image's
URL, and a document of the tenant (the prompt as its text) so the image can be found again by what it
shows, through image search and text search alike (indexing/images/generated.py).

A role of its own so a GPU host can run only this (`ragloop worker images`); `ragloop up` runs it
too. Without RAGLOOP_IMAGE_GEN_CHECKPOINT the job is settled `failed` with the message that says
how to turn generation on (the gateway refuses new jobs with the same message first).
"""

from __future__ import annotations

import asyncio

import structlog

from indexing.images.generated import generated_image_document
from indexing.types import SourceDocument
from models.image_generator import ImageGenerationOff, check_request
from models.image_jobs import ImageJobStore
from schemas.events import DocumentIngest, ImageGenerate
from schemas.tables import ImageGenerationRecord
from streams.consumer import EventConsumer
from streams.image_jobs import OutboxEntries, job_path
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

GROUP = "ragloop.images"
log = structlog.get_logger(__name__)


def caption_document(document: SourceDocument) -> DocumentIngest:
    """The ingest event of a generated image's text form (its prompt), carrying the image's URLs in its metadata."""
    return DocumentIngest(tenant=document.tenant, document_id=document.id, title=document.title, text=document.text,
                          source=document.source, metadata=document.metadata)


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    jobs = ImageJobStore(services.stores.db)
    limits = services.settings.image_gen
    outbox = OutboxEntries(services.settings)

    def render(request: ImageGenerate, job: ImageGenerationRecord) -> None:
        try:
            generator = services.image_generator
        except ImageGenerationOff as off:
            jobs.settle(job.id, status="failed", error=str(off))
            return
        size = f"{request.width or limits.size}x{request.height or limits.size}"
        try:
            checked = check_request(request.prompt, limits, size=size, steps=request.steps, seed=request.seed)
        except ValueError as error:  # bounds lowered since the job was accepted
            jobs.settle(job.id, status="failed", error=str(error))
            return
        stored = generated_image_document(generator.generate(checked), tenant=job.tenant, job_id=job.id, prompt=job.prompt,
                                          source=job_path(job.id), store=services.image_store, images=services.images)
        document = caption_document(stored)
        entry = outbox.entry(document, aggregate="document", aggregate_id=document.document_id)  # published by this process's relay
        services.stores.documents.upsert_document(document.document_id, job.tenant, outbox=[entry], title=document.title,
                                                  status="queued", error=None, access=[])
        url = str(stored.metadata["image_url"])
        jobs.settle(job.id, status="done", image_uri=url, document_id=document.document_id)
        log.info("image generated", job=job.id, tenant=job.tenant, image=url)

    async def on_generate(request: ImageGenerate) -> None:
        job = await asyncio.to_thread(jobs.get, request.task_id, request.tenant)
        if job is None or job.status != "queued":  # unknown here, another tenant's, or settled by an earlier delivery
            return
        await asyncio.to_thread(render, request, job)

    async def failed(request: ImageGenerate, reason: str) -> None:
        """A render that kept failing (a broken checkpoint, out of memory) ends the job `failed` with the reason:
        a client polling it must not wait on `queued` for ever."""
        job = await asyncio.to_thread(jobs.get, request.task_id, request.tenant)
        if job is not None:
            await asyncio.to_thread(jobs.settle, job.id, status="failed", error=reason[:2000])

    return [EventConsumer(TOPICS["images.generate"], GROUP, on_generate, on_dead_letter=failed, max_processing_s=1800)]
