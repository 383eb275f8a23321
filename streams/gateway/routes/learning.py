"""Feedback on answers, and the model versions it trains: listed per tenant, promoted or rolled back by hand.

Tenant walls: a caller sees its tenant's line of versions plus the shared line (the base model and adapters an
operator shared), never another tenant's; another tenant's version answers 404 as if it did not exist. With
auth on, an API key acts on its own tenant's line only: the shared line serves every tenant, so only an
operator changes it (`ragloop models promote|rollback|share` with database access; actor `cli`). Every
action is audited in the registry's decision records (actor `api:<tenant>`, or `api:anonymous` with auth off)
and published on `model.updated` so every agent converges.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request

from models.actions import Action, act
from models.registry import InvalidTransition, ModelRegistry, UnknownVersion
from schemas.events import VERSION_PATTERN, FeedbackEvent, Identifier
from schemas.tables import ModelVersionRecord
from streams.gateway.api_models import (
    FeedbackAccepted,
    FeedbackIn,
    ModelActionIn,
    ModelActionOut,
    ModelDecisionList,
    ModelDecisionOut,
    ModelList,
    ModelOut,
)
from streams.gateway.auth import grant_of, owns_task, tenant_of
from streams.gateway.context import GatewayContext
from trainers.folding import refusal
from trainers.train_policy import load_policy

VersionPath = Annotated[str, Path(max_length=200, pattern=VERSION_PATTERN, description="A version id from GET /v1/models.")]
TenantQuery = Annotated[Identifier, Query(description="Whose line to show or act on when auth is off; with auth on, the API key's tenant.")]


def tenant_view(registry: ModelRegistry, family: str, tenant: str) -> ModelList:
    """The tenant's line plus the shared line, each version's state as this tenant sees it: exactly one `active`."""
    registry.ensure_base_version(family)
    serving = registry.serving(family, tenant)
    rows = [ModelOut.of(r, state=_state_for(r, serving.active.version), serving=r.version in serving.versions)
            for r in registry.list_versions(family, tenant, every_tenant=False)]
    return ModelList(models=rows, data=rows, tenant=tenant, active_for_tenant=serving.active.version,
                     canary=serving.canary.version if serving.canary else None)


def _state_for(row: ModelVersionRecord, active: str) -> str:
    if row.version == active:
        return "active"
    return "standby" if row.state == "active" else row.state  # the shared active one, while the tenant's own replaces it


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter()
    registry, family = ctx.stores.registry, ctx.settings.llm.model_family
    max_correction_chars = load_policy(ctx.settings).train.max_correction_chars

    @api.post("/v1/feedback", status_code=202, response_model=FeedbackAccepted, tags=["feedback"],
              responses={404: {"description": "Unknown task, or another tenant's."},
                         422: {"description": "A correction that is empty or longer than the learning policy's `max_correction_chars`."}})
    async def post_feedback(body: FeedbackIn, request: Request) -> FeedbackAccepted:
        """Rate an answer, and correct it. Repeated or near-duplicate corrections of one question are accepted and folded
        into one when the trainer reads them (the decision's inputs say how many)."""
        if body.correction is not None and (why := refusal(body.correction, max_correction_chars)) is not None:
            raise HTTPException(422, why)
        task = await asyncio.to_thread(ctx.stores.tasks.get_task, body.task_id)
        if task is None or not owns_task(grant_of(request), task):
            raise HTTPException(404, f"unknown task_id {body.task_id!r}")
        event = FeedbackEvent(tenant=task.tenant, task_id=body.task_id, rating=body.rating, correction=body.correction, comment=body.comment)
        await ctx.runtime.outbox.accept(event, aggregate="feedback", aggregate_id=task.id)  # durable before 202, even with the broker down
        return FeedbackAccepted(feedback_id=event.event_id, task_id=body.task_id)

    @api.get("/v1/models", response_model=ModelList, tags=["models"])
    async def list_models(request: Request, tenant: TenantQuery = "default") -> ModelList:
        """The caller's tenant's versions and the shared ones, exactly one `active` (what answers the tenant);
        also the OpenAI list shape (`object`, `data`). An adapter is named by its artifact, not its path."""
        return await asyncio.to_thread(tenant_view, registry, family, tenant_of(request, tenant))

    @api.get("/v1/models/decisions", response_model=ModelDecisionList, tags=["models"])
    async def list_decisions(request: Request, tenant: TenantQuery = "default", version: Annotated[str | None, Query(max_length=200)] = None,
                             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ModelDecisionList:
        """The audit trail of the caller's line and the shared line, oldest first: every candidate, canary,
        promotion, retirement, rejection, rollback and share, with who decided, why, and on what numbers."""
        rows = await asyncio.to_thread(registry.decisions, family, tenant_of(request, tenant), every_tenant=False)
        rows = [r for r in rows if version is None or r.version == version][-limit:]
        return ModelDecisionList(decisions=[ModelDecisionOut.of(r) for r in rows])

    async def person_acts(action: Action, version: str, request: Request, tenant: str, body: ModelActionIn | None) -> ModelActionOut:
        grant, caller = grant_of(request), tenant_of(request, tenant)
        row = await asyncio.to_thread(registry.visible_to, version, caller)
        if row is None or row.family != family:
            raise HTTPException(404, f"unknown model version {version!r}: GET /v1/models lists the versions of your line and the shared line")
        if grant is not None and row.tenant is None:
            raise HTTPException(403, f"{version} is on the shared line, which serves every tenant: an API key acts on its own tenant's "
                                     "versions only; an operator changes the shared line with `ragloop models promote|rollback`")
        try:
            decision = await asyncio.to_thread(act, registry, action, version, actor=f"api:{grant.tenant}" if grant else "api:anonymous",
                                               reason=body.reason if body else None, caused_by=caller)
        except UnknownVersion as error:  # removed between the check and the transition
            raise HTTPException(404, str(error)) from None
        except InvalidTransition as error:
            raise HTTPException(409, str(error)) from None
        await ctx.runtime.outbox.deliver_now()  # the move wrote its model.updated in its transaction: every agent hears of it
        view = await asyncio.to_thread(tenant_view, registry, family, caller)
        acted = next((m for m in view.models if m.version == version), None) or ModelOut.of(row)
        return ModelActionOut(decision=ModelDecisionOut.of(decision), model=acted, active_for_tenant=view.active_for_tenant or "")

    @api.post("/v1/models/{version}/promote", response_model=ModelActionOut, tags=["models"])
    async def promote(version: VersionPath, request: Request, tenant: TenantQuery = "default",
                      body: Annotated[ModelActionIn | None, Body()] = None) -> ModelActionOut:
        """Serve all of the tenant's traffic with this version (a candidate or canary); the line's previous active version
        is retired. 409 with the reason when the version cannot be promoted from its state."""
        return await person_acts("promote", version, request, tenant, body)

    @api.post("/v1/models/{version}/rollback", response_model=ModelActionOut, tags=["models"])
    async def rollback(version: VersionPath, request: Request, tenant: TenantQuery = "default",
                       body: Annotated[ModelActionIn | None, Body()] = None) -> ModelActionOut:
        """Take a canary or active version back for good: the line returns to the version it replaced, else to the shared
        one. 409 for the base model (everything falls back to it) and for versions not serving."""
        return await person_acts("rollback", version, request, tenant, body)

    return api
