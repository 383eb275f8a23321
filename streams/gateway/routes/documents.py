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

from indexing.loaders import LoadError
from indexing.loaders.formats import detect_format
from indexing.url_guard import resolve_allowed
from schemas.events import DocumentDelete, DocumentIngest, new_id
from streams.document_capacity import check_document_capacity
from streams.gateway.api_models import DocumentAccepted, DocumentIn, DocumentOut
from streams.gateway.auth import tenant_of
from streams.gateway.context import GatewayContext
from streams.tasks import QueueFull

SETTLED = ("indexed", "failed", "deleted")
WAIT_POLL_S = 0.2  # a document's status lives only in the store: ?wait=true polls it


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(prefix="/v1/documents", tags=["documents"])
    settings = ctx.settings

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
            except binascii.Error:
                raise HTTPException(422, "content_b64: not valid base64") from None
            if len(data) > settings.ingest.fetch_max_bytes:
                raise HTTPException(413, f"content is {len(data)} bytes; the limit is {settings.ingest.fetch_max_bytes} (RAGLOOP_FETCH_MAX_BYTES)")
            try:
                detect_format(media_type=body.media_type, name=body.filename or "", head=data[:512])
            except LoadError as error:
                raise HTTPException(415, str(error)) from None

    @api.post("", status_code=202, response_model=DocumentAccepted,
              responses={413: {"description": "Content too large."}, 415: {"description": "Unsupported format."},
                         503: {"description": "Too many documents waiting; see Retry-After."}})
    async def post_document(body: DocumentIn, request: Request) -> DocumentAccepted:
        await check(body)
        body.tenant = tenant_of(request, body.tenant)
        document_id = body.document_id or new_id()
        existing = await asyncio.to_thread(ctx.stores.documents.get_document, document_id)
        if existing is not None and existing.tenant != body.tenant:
            raise HTTPException(409, f"document_id {document_id!r} belongs to another tenant; choose another id")
        try:
            await check_document_capacity(ctx.stores.documents, settings, body.tenant)
        except QueueFull as full:
            raise HTTPException(503, str(full), headers={"Retry-After": str(full.retry_after_s)}) from None
        await asyncio.to_thread(ctx.stores.documents.upsert_document, document_id, body.tenant, title=body.title, status="queued", error=None)
        await ctx.publisher.publish(DocumentIngest(tenant=body.tenant, document_id=document_id, title=body.title, text=body.text,
                                                   url=body.url, content_b64=body.content_b64, media_type=body.media_type,
                                                   filename=body.filename, metadata=body.metadata, access=body.access,
                                                   source=body.url or body.filename or "api"))
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
        await ctx.publisher.publish(DocumentDelete(tenant=row.tenant, document_id=document_id))
        return DocumentAccepted(document_id=document_id, status=row.status)

    return api
