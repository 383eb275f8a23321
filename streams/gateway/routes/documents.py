"""Documents: accept for indexing (text, URL or file bytes), read their status back, delete them.

What can be checked without doing the work is checked here, so the caller gets a 4xx at once: a
forbidden or unresolvable URL (422), an unsupported format (415) or an oversized body (413).
Everything else is reported through the document's status and `docs.progress`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, Request

from indexing.images.decode import http_status
from indexing.images.ingest import check_image_upload
from indexing.loaders import LoadError
from indexing.loaders.formats import detect_format
from indexing.url_guard import resolve_allowed
from schemas.events import DocumentDelete, DocumentIngest, new_id
from schemas.tables import OutboxRecord
from streams.document_capacity import check_document_capacity
from streams.gateway.api_models import DocumentAccepted, DocumentIn, DocumentOut
from streams.gateway.auth import grant_of, tenant_of
from streams.gateway.context import GatewayContext
from streams.outbox_relay import EventTooLarge
from streams.tasks import QueueFull

SETTLED = ("indexed", "failed", "deleted")
TOO_LARGE_HINT = "give the document by `url` instead (fetched by the ingest worker, up to RAGLOOP_FETCH_MAX_BYTES)"
WAIT_POLL_S = 0.2  # a document's status lives only in the store: ?wait=true polls it


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(prefix="/v1/documents", tags=["documents"])
    settings = ctx.settings

    def outbox_entry(event: DocumentIngest | DocumentDelete, document_id: str, hint: str = "") -> OutboxRecord:
        """The document's event as an outbox entry, written with its row; 413 when no message can carry it."""
        try:
            return ctx.runtime.outbox.entry(event, aggregate="document", aggregate_id=document_id, hint=hint)
        except EventTooLarge as error:
            raise HTTPException(413, str(error)) from None

    async def check(body: DocumentIn) -> None:
        if body.text is not None and (size := len(body.text.encode("utf-8"))) > settings.ingest.fetch_max_bytes:
            raise HTTPException(413, f"text is {size} bytes; the limit is {settings.ingest.fetch_max_bytes} (RAGLOOP_FETCH_MAX_BYTES)")
        if body.url is not None:
            parts = urlsplit(body.url)
            try:
                await asyncio.to_thread(resolve_allowed, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80),
                                        allow_private=settings.ingest.fetch_allow_private)
            except LoadError as error:
                raise HTTPException(422, f"url: {error}") from None
        if body.content_b64 is not None:
            try:
                data = base64.b64decode(body.content_b64, validate=True)
            except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
                raise HTTPException(422, "content_b64: not valid base64") from None
            if len(data) > settings.ingest.fetch_max_bytes:
                raise HTTPException(413, f"content is {len(data)} bytes; the limit is {settings.ingest.fetch_max_bytes} (RAGLOOP_FETCH_MAX_BYTES)")
            try:
                if await asyncio.to_thread(check_image_upload, settings, data, name=body.filename or "", media_type=body.media_type):
                    return
            except LoadError as error:
                raise HTTPException(http_status(error), str(error)) from None
            try:
                detect_format(media_type=body.media_type, name=body.filename or "", head=data[:512])
            except LoadError as error:
                raise HTTPException(415, str(error)) from None

    async def refuse_unusable_id(document_id: str, tenant: str, request: Request) -> None:
        """Document ids are global. An id taken by another tenant, or by a document of this tenant
        that the key may not see, answers the same 409 (no tenant named, nothing about the document),
        so a re-POST can neither overwrite nor unrestrict it and the answer tells nothing but "taken"."""
        grant = grant_of(request)
        if await asyncio.to_thread(ctx.stores.documents.hidden_from, document_id, tenant, grant.principals if grant else None):
            raise HTTPException(409, f"document_id {document_id!r} is taken; choose another id (or leave it out for a fresh one)")

    @api.post("", status_code=202, response_model=DocumentAccepted,
              responses={409: {"description": "The document_id is taken."}, 413: {"description": "Content too large for a message: give a `url`."},
                         415: {"description": "Unsupported format."}, 503: {"description": "Too many documents waiting; see Retry-After."}})
    async def post_document(body: DocumentIn, request: Request) -> DocumentAccepted:
        await check(body)
        body.tenant = tenant_of(request, body.tenant)
        document_id = body.document_id or new_id()
        await refuse_unusable_id(document_id, body.tenant, request)
        event = DocumentIngest(tenant=body.tenant, document_id=document_id, title=body.title, text=body.text, url=body.url,
                               content_b64=body.content_b64, media_type=body.media_type, filename=body.filename,
                               metadata=body.metadata, access=body.access, source=body.url or body.filename or "api")
        entry = outbox_entry(event, document_id, TOO_LARGE_HINT)
        try:
            await check_document_capacity(ctx.stores.documents, settings, body.tenant)
        except QueueFull as full:
            raise HTTPException(503, str(full), headers={"Retry-After": str(full.retry_after_s)}) from None
        await asyncio.to_thread(ctx.stores.documents.upsert_document, document_id, body.tenant, outbox=[entry], title=body.title,
                                status="queued", error=None, access=body.access)
        await ctx.runtime.outbox.send([entry])  # on failure the relay delivers it: the document is accepted either way
        return DocumentAccepted(document_id=document_id, status="queued")

    @api.get("/{document_id}", response_model=DocumentOut)
    async def get_document(document_id: str,
                           wait: Annotated[bool, Query(description="Block until it is indexed, failed or deleted.")] = False,
                           timeout: Annotated[float, Query(gt=0, le=3600, description="Seconds to wait with ?wait=true.")] = 300.0) -> DocumentOut:
        row = await asyncio.to_thread(ctx.stores.documents.get_document, document_id)
        deadline = time.monotonic() + timeout
        while wait and row is not None and row.status not in SETTLED and time.monotonic() < deadline:
            await asyncio.sleep(WAIT_POLL_S)
            row = await asyncio.to_thread(ctx.stores.documents.get_document, document_id)
        if row is None:
            raise HTTPException(404, f"unknown document_id {document_id!r}")
        return DocumentOut.of(row)

    @api.delete("/{document_id}", status_code=202, response_model=DocumentAccepted)
    async def delete_document(document_id: str) -> DocumentAccepted:
        """Remove the document's chunks from the index (asynchronously: its status becomes `deleted`)."""
        row = await asyncio.to_thread(ctx.stores.documents.get_document, document_id)
        if row is None:
            raise HTTPException(404, f"unknown document_id {document_id!r}")
        entry = outbox_entry(DocumentDelete(tenant=row.tenant, document_id=document_id), document_id)
        await asyncio.to_thread(ctx.stores.documents.upsert_document, document_id, row.tenant, outbox=[entry])
        await ctx.runtime.outbox.send([entry])
        return DocumentAccepted(document_id=document_id, status=row.status)

    return api
