"""Feedback on answers, and the model versions it trains."""

from __future__ import annotations

import asyncio
from pathlib import PurePath

from fastapi import APIRouter, HTTPException, Request

from schemas.events import FeedbackEvent
from streams.gateway.api_models import FeedbackAccepted, FeedbackIn, ModelList, ModelOut
from streams.gateway.auth import grant_of, owns_task
from streams.gateway.context import GatewayContext
from trainers.folding import refusal
from trainers.train_policy import load_policy


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter()
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
    async def list_models() -> ModelList:
        """Model versions, exactly one `active`; also the OpenAI list shape (`object`, `data`). An adapter
        is named by its folder, not its path: where the server keeps files is nobody's business."""
        rows = [ModelOut.of(r).model_copy(update={"adapter_path": PurePath(r.adapter_path).name if r.adapter_path else None})
                for r in await asyncio.to_thread(ctx.stores.registry.list_versions, ctx.settings.llm.model_family)]
        return ModelList(models=rows, data=rows)

    return api
