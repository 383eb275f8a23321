"""Documents: accept for indexing, read their status back."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException

from schemas.events import DocumentIngest, new_id
from streams.gateway.api_models import DocumentAccepted, DocumentIn, DocumentOut
from streams.gateway.context import GatewayContext


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(prefix="/v1/documents", tags=["documents"])

    @api.post("", status_code=202, response_model=DocumentAccepted)
    async def post_document(body: DocumentIn) -> DocumentAccepted:
        document_id = body.id or new_id()
        await asyncio.to_thread(ctx.store.upsert_document, document_id, body.tenant, title=body.title, status="queued", error=None)
        await ctx.publisher.publish(DocumentIngest(tenant=body.tenant, document_id=document_id, title=body.title, text=body.text,
                                                   metadata=body.metadata, access=body.access, source="api"))
        return DocumentAccepted(document_id=document_id, status="queued")

    @api.get("/{document_id}", response_model=DocumentOut)
    async def get_document(document_id: str) -> DocumentOut:
        row = await asyncio.to_thread(ctx.store.get_document, document_id)
        if row is None:
            raise HTTPException(404, f"unknown document_id {document_id!r}")
        return DocumentOut.of(row)

    return api
