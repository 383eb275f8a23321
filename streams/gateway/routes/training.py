"""Why a tenant's model did or did not retrain: its training runs and the learning policy's recent
decisions with their inputs (the API key's tenant only: runs and decisions name corrections)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from schemas.tables import TrainingDecisionRecord, TrainingRunRecord
from streams.gateway.auth import tenant_of
from streams.gateway.context import GatewayContext
from trainers.training_store import TrainingStore


class TrainingRunOut(BaseModel):
    id: str
    tenant: str
    family: str
    recipe: str
    state: str
    version: str | None
    error: str | None
    metrics: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: TrainingRunRecord) -> TrainingRunOut:
        return cls.model_validate(row.model_dump())


class TrainingDecisionOut(BaseModel):
    id: str
    tenant: str
    family: str
    train: bool
    reason: str
    inputs: dict[str, Any]
    train_request_id: str | None
    at: datetime

    @classmethod
    def of(cls, row: TrainingDecisionRecord) -> TrainingDecisionOut:
        return cls.model_validate(row.model_dump())


class TrainingRunList(BaseModel):
    tenant: str
    runs: list[TrainingRunOut]
    decisions: list[TrainingDecisionOut]


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter()
    store = TrainingStore(ctx.stores.db)

    @api.get("/v1/training-runs", response_model=TrainingRunList, tags=["models"])
    async def training_runs(request: Request,
                            tenant: str = Query("default", description="Whose runs (auth off; a key sees its own tenant's)."),
                            limit: int = Query(50, ge=1, le=500, description="Newest runs and decisions to return.")) -> TrainingRunList:
        """The tenant's training runs (newest first, with gate numbers and losses) and the learning policy's latest decisions
        (whether to train, why, and on what inputs)."""
        scope = tenant_of(request, tenant)
        runs, decisions = await asyncio.gather(asyncio.to_thread(store.runs, scope, limit), asyncio.to_thread(store.decisions, scope, limit))
        return TrainingRunList(tenant=scope, runs=[TrainingRunOut.of(r) for r in runs],
                               decisions=[TrainingDecisionOut.of(d) for d in decisions])

    return api
