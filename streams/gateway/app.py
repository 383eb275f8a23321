"""The HTTP gateway: JSON in, events out, task state back from the store.

Accepting a request means it is durable (a task or document row, with its event in the outbox) and
published, now or by the outbox relay; the answer
arrives later through the workers. `?wait=true` is a convenience that polls the same state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import InterfaceError, OperationalError

from schemas.events import ChatResponse, ChatToken
from streams.asyncapi import asyncapi_document
from streams.consumer import EventConsumer
from streams.gateway.auth import api_key_auth
from streams.gateway.body_limit import BodyLimitMiddleware
from streams.gateway.context import GatewayContext
from streams.gateway.error_body import error_body
from streams.gateway.routes import (
    chat,
    dead_letters,
    documents,
    image_generations,
    images,
    learning,
    openai,
    report,
    training,
    webhooks,
)
from streams.metrics import QUEUE_DEPTH
from streams.runtime import Runtime
from streams.topics import TOPICS

API_DESCRIPTION = """Event-driven RAG with a task queue. Writes are accepted (202) and processed by
workers over topics; read task and document state back, follow a task as Server-Sent Events, or
pass `?wait=true` on chat. `/v1/chat/completions` speaks the OpenAI protocol."""


def create_app(runtime: Runtime) -> FastAPI:
    ctx = GatewayContext.of(runtime)

    async def relay_token(token: ChatToken) -> None:
        ctx.tasks.tokens.publish(token)

    async def wake_waiters(response: ChatResponse) -> None:
        ctx.tasks.finished(response.task_id)

    # Every gateway replica needs every token and completion of the tasks its clients follow: broadcast groups.
    runtime.bind(EventConsumer(TOPICS["chat.tokens"], "ragloop.gateway.tokens", relay_token, broadcast=True))
    runtime.bind(EventConsumer(TOPICS["chat.responses"], "ragloop.gateway.responses", wake_waiters, broadcast=True))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="ragloop", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware, settings=runtime.settings)  # before any body is read, authenticated or not
    authenticated = [Depends(api_key_auth(ctx))]
    for module in (documents, chat, learning, training, openai, dead_letters, report, image_generations, images):
        app.include_router(module.router(ctx), dependencies=authenticated)
    app.include_router(webhooks.router(ctx))  # signed requests instead of API keys

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in error.errors()]
        detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in error.errors()]
        return JSONResponse(status_code=422, content={"error": "; ".join(problems), "detail": detail})

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_down(_: Request, error: Exception) -> JSONResponse:
        # Nothing was accepted (the row and its outbox entry commit together, or neither): retrying is safe.
        retry_after = runtime.settings.tasks.retry_after_s
        return JSONResponse(status_code=503, content={"detail": "the database is unavailable; retry later"},
                            headers={"Retry-After": str(retry_after)})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        body = error_body(request.url.path, error.status_code, error.detail)
        return JSONResponse(status_code=error.status_code, content=body, headers=error.headers)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, object]:
        settings = runtime.settings
        return {"status": "ok", "roles": [*runtime.roles, "gateway"], "broker": settings.broker.url.split("://")[0], "search": settings.search.url.split("://")[0]}

    @app.get("/asyncapi.json", tags=["ops"])
    async def asyncapi() -> dict[str, object]:
        """AsyncAPI 3.0 description of every topic and event (the other half of the API)."""
        return asyncapi_document()

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        QUEUE_DEPTH.set(await asyncio.to_thread(runtime.stores.tasks.count_queued))
        await runtime.refresh_lag_metrics()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
