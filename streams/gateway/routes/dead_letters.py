"""Dead letters for operators: what the workers gave up on, and why (the API key's tenant only)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from schemas.events import principals_fingerprint
from schemas.tables import DeadLetterRecord
from streams.dead_letters import DeadLetterStore, parse_since
from streams.gateway.auth import grant_of
from streams.gateway.context import GatewayContext


class DeadLetterOut(BaseModel):
    id: str
    topic: str
    key: str | None
    consumer: str
    tenant: str | None
    event_id: str | None
    reason: str
    error_type: str
    attempts: int
    payload: str
    payload_encoding: str
    failed_at: datetime
    replays: int
    replayed_at: datetime | None
    replayed_by: str | None

    @classmethod
    def of(cls, row: DeadLetterRecord) -> DeadLetterOut:
        return cls.model_validate(row.model_dump(exclude={"asked_as"}))


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetterOut]
    replay: str = "ragloop dlq replay TOPIC --ids ID[,ID…] (after fixing the cause)"


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(tags=["ops"])
    letters = DeadLetterStore(ctx.stores.db)

    @api.get("/v1/dead-letters", response_model=DeadLetterList)
    async def list_dead_letters(request: Request,
                                topic: str | None = Query(None, description="Only this topic, e.g. chat.requests."),
                                since: str | None = Query(None, description="Only newer letters: 30m, 2h, 1d or an ISO time."),
                                tenant: str | None = Query(None, description="Only this tenant (auth off; a key sees its own tenant)."),
                                limit: int = Query(100, ge=1, le=1000)) -> DeadLetterList:
        """Newest first. With API keys on, a key sees its tenant's letters, and of those asked with
        principals only the ones asked as its own principals (a payload may quote restricted text)."""
        try:
            after = parse_since(since) if since else None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        grant = grant_of(request)
        scope = {"tenant": grant.tenant, "asked_as": principals_fingerprint(grant.principals)} if grant else {"tenant": tenant}
        rows = await asyncio.to_thread(letters.list, topic=topic, since=after, limit=limit, **scope)
        return DeadLetterList(dead_letters=[DeadLetterOut.of(r) for r in rows])

    return api
