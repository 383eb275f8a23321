"""Text-to-image over HTTP: `POST /v1/images/generations` (OpenAI-shaped) queues a job on `images.generate`,
`GET /v1/images/generations/{id}` reads it back, `…/content` serves the PNG. All of it per tenant:
another tenant's job is a 404, exactly like an unknown one.

What can be checked before any work is checked here: generation off (409, saying which setting
turns it on) and prompts, sizes or steps beyond the bounds (422 naming the limit). `wait: true`
blocks until the image is there (up to RAGLOOP_IMAGE_GEN_WAIT_S), so an OpenAI client gets the URL
in the answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from indexing.images.store import open_image_store
from models.image_generator import ImageGenerationOff
from models.image_jobs import ImageJobStore
from schemas.tables import ImageGenerationRecord
from streams.gateway.auth import tenant_of
from streams.gateway.context import GatewayContext
from streams.image_jobs import image_path, submit_image_job

WAIT_POLL_S = 0.2  # a job's state lives only in the store: `wait` polls it


class ImageGenerationIn(BaseModel):
    prompt: str = Field(min_length=1, description="What the image should show (RAGLOOP_IMAGE_GEN_MAX_PROMPT_CHARS at most).")
    size: str | None = Field(None, description="`WIDTHxHEIGHT` in pixels, multiples of 8; default RAGLOOP_IMAGE_GEN_SIZE square.")
    steps: int | None = Field(None, description="Denoising steps; default RAGLOOP_IMAGE_GEN_STEPS.")
    seed: int | None = Field(None, ge=0, description="Reproducible output on the same checkpoint and device.")
    n: Literal[1] = Field(1, description="Images per request (one; send more requests for more).")
    response_format: Literal["url"] = "url"
    model: str | None = Field(None, description="Accepted for OpenAI clients; the configured checkpoint is used.")
    tenant: str = Field("default", description="Without API keys: the tenant the image belongs to (a key's tenant wins).")
    wait: bool = Field(False, description="Block until the image is generated (or failed), up to RAGLOOP_IMAGE_GEN_WAIT_S.")


class GeneratedImage(BaseModel):
    url: str
    revised_prompt: str


class ImageGenerationOut(BaseModel):
    id: str
    status: Literal["queued", "done", "failed"]
    created: int = Field(description="Unix seconds when the job was accepted.")
    prompt: str
    size: str
    steps: int
    data: list[GeneratedImage] = Field(default_factory=list, description="The image once `done` (OpenAI's shape).")
    document_id: str | None = Field(None, description="The tenant's document that makes the image findable by its prompt.")
    error: str | None = None

    @classmethod
    def of(cls, job: ImageGenerationRecord, base_url: str) -> ImageGenerationOut:
        data = [GeneratedImage(url=base_url.rstrip("/") + image_path(job.id), revised_prompt=job.prompt)] if job.status == "done" else []
        return cls(id=job.id, status=job.status, created=int(job.created_at.timestamp()), prompt=job.prompt, size=f"{job.width}x{job.height}",
                   steps=job.steps, data=data, document_id=job.document_id, error=job.error)


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(prefix="/v1/images/generations", tags=["images"])
    jobs = ImageJobStore(ctx.stores.db)
    store = open_image_store(ctx.settings)

    async def settled(job: ImageGenerationRecord, timeout_s: float) -> ImageGenerationRecord:
        deadline = time.monotonic() + timeout_s
        while job.status == "queued" and time.monotonic() < deadline:
            await asyncio.sleep(WAIT_POLL_S)
            latest = await asyncio.to_thread(jobs.get, job.id, job.tenant)
            job = latest or job
        return job

    async def owned(job_id: str, tenant: str) -> ImageGenerationRecord:
        job = await asyncio.to_thread(jobs.get, job_id, tenant)
        if job is None:
            raise HTTPException(404, f"unknown image generation {job_id!r}")
        return job

    @api.post("", status_code=202, response_model=ImageGenerationOut,
              responses={409: {"description": "Image generation is off (no RAGLOOP_IMAGE_GEN_CHECKPOINT)."},
                         422: {"description": "Prompt, size or steps beyond the configured limits."}})
    async def generate(body: ImageGenerationIn, request: Request, response: Response) -> ImageGenerationOut:
        """Queue a text-to-image job; with `wait`, answer when the image is there (200) or the wait ran out (202)."""
        tenant = tenant_of(request, body.tenant)
        try:
            job, entry = await asyncio.to_thread(submit_image_job, jobs, ctx.settings, tenant=tenant, prompt=body.prompt, size=body.size,
                                                 steps=body.steps, seed=body.seed)
        except ImageGenerationOff as off:
            raise HTTPException(409, str(off)) from None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        await ctx.runtime.outbox.send([entry])  # on failure the relay delivers it: the job is accepted either way
        if body.wait:
            job = await settled(job, ctx.settings.image_gen.wait_s)
        if job.status != "queued":
            response.status_code = 200
        return ImageGenerationOut.of(job, str(request.base_url))

    @api.get("/{job_id}", response_model=ImageGenerationOut)
    async def get_generation(job_id: str, request: Request,
                             tenant: Annotated[str, Query(description="Without API keys: the tenant to read as.")] = "default",
                             wait: Annotated[bool, Query(description="Block until done or failed.")] = False) -> ImageGenerationOut:
        job = await owned(job_id, tenant_of(request, tenant))
        if wait:
            job = await settled(job, ctx.settings.image_gen.wait_s)
        return ImageGenerationOut.of(job, str(request.base_url))

    @api.get("/{job_id}/content", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def get_image(job_id: str, request: Request,
                        tenant: Annotated[str, Query(description="Without API keys: the tenant to read as.")] = "default") -> Response:
        """The generated PNG (409 while it is still being generated or when it failed)."""
        job = await owned(job_id, tenant_of(request, tenant))
        if job.status != "done" or job.image_uri is None:
            raise HTTPException(409, f"image generation {job_id!r} is {job.status}" + (f": {job.error}" if job.error else ""))
        image_id = job.image_uri.rsplit("/", 1)[-1]  # the job keeps the image's URL in the one image store, /v1/images/<id>
        png = await asyncio.to_thread(store.read, job.tenant, image_id)
        if png is None:
            raise HTTPException(410, f"image generation {job_id!r}: its image {image_id!r} is gone from the image store "
                                     "(its document was deleted, or the image folder or bucket was moved or cleaned)")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    return api
