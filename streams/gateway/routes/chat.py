"""Chat tasks: submit (202, or `?wait=true`), read, follow as Server-Sent Events, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from schemas.events import ChatOptions, ChatRequest, ChatTurn, new_id
from schemas.settings import Settings
from schemas.tables import TERMINAL_TASK_STATES, TaskRecord
from streams.gateway.api_models import ChatIn
from streams.gateway.auth import grant_of, principals_of, tenant_of
from streams.gateway.chat_images import ChatTurnIn, check_chat
from streams.gateway.context import GatewayContext
from streams.outbox_relay import EventTooLarge
from streams.task_view import TaskOut
from streams.tasks import IdempotencyConflict, QueueFull

# Every answer names the exact model version that produced it (a content-addressed id for an adapter).
MODEL_VERSION_HEADER = "X-Ragloop-Model-Version"
VERSION_HEADER_DOC = {MODEL_VERSION_HEADER: {"description": "The model version that produced the answer (once the task has a result).",
                                             "schema": {"type": "string"}}}


def mark_version(response: Response, task: TaskRecord | None) -> None:
    """Put the answering version in `X-Ragloop-Model-Version` when the task has a result."""
    if task is not None and task.result is not None:
        response.headers[MODEL_VERSION_HEADER] = task.result.model_version


def chat_request(ctx: GatewayContext, body: ChatIn, images: list[str] | None = None) -> ChatRequest:
    """Validate what the queue cannot: prompt size and model version. Raises HTTPException."""
    if any(not isinstance(m.content, str) for m in body.messages):
        raise TypeError("content parts reach chat_request unflattened: await plain_chat(body, settings) first")
    messages = [ChatTurn(role=m.role, content=str(m.content)) for m in body.messages]
    size = sum(len(m.content) for m in messages)
    if size > ctx.settings.gateway.max_prompt_chars:
        raise HTTPException(413, f"messages hold {size} characters; the limit is {ctx.settings.gateway.max_prompt_chars} (RAGLOOP_MAX_PROMPT_CHARS)")
    return ChatRequest(tenant=body.tenant, conversation_id=body.conversation_id or new_id(), messages=messages,
                       options=ChatOptions(retrieval=body.retrieval, model_version=body.model_version, k=body.k,
                                           max_new_tokens=body.max_new_tokens, priority=body.priority,
                                           stream=body.stream if body.stream is not None else True),
                       reference=body.reference, callback_url=body.callback_url, principals=body.principals, images=images or [])


async def ensure_model_version(ctx: GatewayContext, version: str | None, request: Request, tenant: str) -> None:
    """404 for a version that does not exist or lies behind the tenant wall (another tenant's adapter
    answers the same 404 as an unknown one). With API keys, a key acts for one tenant and may pin only
    what serves that tenant now (its active and canary versions, or the shared active one): a candidate,
    rejected or retired one answers that 404 too, naming only what the key may pin."""
    if not version:
        return
    registry, family = ctx.stores.registry, ctx.settings.llm.model_family
    if grant_of(request) is not None:
        allowed = await asyncio.to_thread(registry.pinnable_by_tenants, family, tenant)
        if version not in allowed:
            raise HTTPException(404, f"model_version {version!r} is unknown or not available to API keys "
                                     f"(only the versions serving the key's tenant may be pinned); available: {allowed}")
    elif await asyncio.to_thread(registry.visible_to, version, tenant) is None:
        versions = [v.version for v in await asyncio.to_thread(registry.list_versions, family, tenant, every_tenant=False)]
        raise HTTPException(404, f"unknown model_version {version!r} for tenant {tenant!r}; available: {versions}")


async def submit(ctx: GatewayContext, request: ChatRequest, idempotency_key: str | None):  # noqa: ANN201 — (TaskRecord, bool)
    try:
        return await ctx.tasks.submit(request, idempotency_key=idempotency_key)
    except QueueFull as full:
        raise HTTPException(503, str(full), headers={"Retry-After": str(full.retry_after_s)}) from None
    except IdempotencyConflict as conflict:
        raise HTTPException(409, str(conflict)) from None
    except EventTooLarge as too_large:
        raise HTTPException(413, str(too_large)) from None


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(tags=["chat"])

    async def _task_or_404(task_id: str) -> TaskRecord:
        task = await ctx.tasks.get(task_id)
        if task is None:
            raise HTTPException(404, f"unknown task_id {task_id!r}")
        return task

    @api.post("/v1/chat", status_code=202, response_model=TaskOut,
              responses={200: {"model": TaskOut, "description": "With ?wait=true: the finished task.", "headers": VERSION_HEADER_DOC},
                         409: {"description": "Idempotency-Key used by another caller."},
                         413: {"description": "Prompt too large."}, 503: {"description": "Queue full; see Retry-After."}})
    async def post_chat(body: ChatIn, request: Request, response: Response,
                        wait: Annotated[bool, Query(description="Block until the task finishes.")] = False,
                        timeout: Annotated[float, Query(gt=0, le=3600, description="Seconds to wait with ?wait=true.")] = 300.0,
                        idempotency_key: Annotated[str | None, Header(max_length=200, pattern=r"^[^#]+$",
                                                                      description="Repeat-safe submission (no `#`).")] = None) -> TaskOut:
        body.tenant = tenant_of(request, body.tenant)
        await ensure_model_version(ctx, body.model_version, request, body.tenant)
        body, images = await plain_chat(body, ctx.settings)  # images checked (422/413 saying why), fetched and noted
        body.principals = principals_of(request, body.principals)
        if body.stream is None:
            body.stream = not wait  # a caller blocking for the result reads no token events: don't publish them
        task, created = await submit(ctx, chat_request(ctx, body, images), idempotency_key)
        if not created:
            response.status_code = 200
        if wait:
            task = await ctx.tasks.wait(task.id, timeout) or task
        if task.status in TERMINAL_TASK_STATES:
            response.status_code = 200
        mark_version(response, task)
        return await _out(task)

    @api.get("/v1/tasks/{task_id}", response_model=TaskOut, responses={200: {"headers": VERSION_HEADER_DOC}})
    async def get_task(task_id: str, response: Response, wait: Annotated[bool, Query(description="Block until the task finishes.")] = False,
                       timeout: Annotated[float, Query(gt=0, le=3600, description="Seconds to wait with ?wait=true.")] = 300.0) -> TaskOut:
        task = await _task_or_404(task_id)
        if wait:
            task = await ctx.tasks.wait(task_id, timeout) or task
        mark_version(response, task)
        return await _out(task)

    @api.delete("/v1/tasks/{task_id}", response_model=TaskOut)
    async def cancel_task(task_id: str) -> TaskOut:
        """Cancel: a queued task never runs; a running one stops generating. Finished tasks are unchanged."""
        await _task_or_404(task_id)
        task = await ctx.tasks.cancel(task_id)
        assert task is not None
        return await _out(task)

    @api.get("/v1/tasks/{task_id}/events", response_class=EventSourceResponse, responses={404: {"description": "Unknown task."}})
    async def task_events(task: TaskRecord = Depends(_task_or_404)) -> AsyncIterator[ServerSentEvent]:  # noqa: B008 — FastAPI's idiom
        """`status` events as the task moves, `token` events as the answer is generated, then `result`.
        The task is looked up as a dependency, before the stream's 200 is sent, so an unknown one is a 404."""
        task_id = task.id
        n = 0
        async for item in ctx.tasks.events(task_id):
            yield ServerSentEvent(event=item.kind, data=item.data, id=str(n))
            n += 1

    async def _out(task: TaskRecord) -> TaskOut:
        # A task never claimed has no attempts to read: a plain submission answers without that query.
        attempts = await asyncio.to_thread(ctx.tasks.attempts.of, task.id) if task.attempts else []
        return TaskOut.of(task, attempts)

    return api


async def plain_chat(body: ChatIn, settings: Settings) -> tuple[ChatIn, list[str]]:
    """`body` with its messages flattened to text, and the question's images as data URLs (`check_chat`)."""
    checked = await check_chat(body.messages, settings)
    return body.model_copy(update={"messages": [ChatTurnIn(role=t.role, content=t.content) for t in checked.turns]}), checked.images
