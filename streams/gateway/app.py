"""The HTTP gateway: JSON in, events out, task state back from the store.

Accepting a request means it is durable (a task or document row) and published; the answer
arrives later through the workers. `?wait=true` is a convenience that polls the same state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.events import ChatOptions, ChatRequest, DocumentIngest, FeedbackEvent, new_id
from schemas.tables import TERMINAL_TASK_STATES
from streams.gateway.api_models import (
    ChatIn,
    DocumentAccepted,
    DocumentIn,
    DocumentOut,
    FeedbackAccepted,
    FeedbackIn,
    ModelList,
    ModelOut,
    TaskOut,
)
from streams.runtime import Runtime
from streams.workers.agent import task_from_request

API_DESCRIPTION = """Event-driven RAG with a task queue. Writes are accepted (202) and processed by
workers over topics; read task and document state back, or pass `?wait=true` on chat."""


def create_app(runtime: Runtime) -> FastAPI:
    store, publisher, settings = runtime.store, runtime.publisher, runtime.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="ragloop", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in error.errors()]
        return JSONResponse(status_code=422, content={"error": "; ".join(problems), "detail": jsonable(error.errors())})

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "roles": runtime.roles, "broker": settings.broker_url.split("://")[0], "search": settings.search_url.split("://")[0]}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/documents", status_code=202, response_model=DocumentAccepted, tags=["documents"])
    async def post_document(body: DocumentIn) -> DocumentAccepted:
        document_id = body.id or new_id()
        await asyncio.to_thread(store.upsert_document, document_id, body.tenant, title=body.title, status="queued", error=None)
        await publisher.publish(DocumentIngest(tenant=body.tenant, document_id=document_id, title=body.title, text=body.text,
                                               metadata=body.metadata, access=body.access, source="api"))
        return DocumentAccepted(document_id=document_id, status="queued")

    @app.get("/v1/documents/{document_id}", response_model=DocumentOut, tags=["documents"])
    async def get_document(document_id: str) -> DocumentOut:
        row = await asyncio.to_thread(store.get_document, document_id)
        if row is None:
            raise HTTPException(404, f"unknown document_id {document_id!r}")
        return DocumentOut.of(row)

    @app.post("/v1/chat", status_code=202, response_model=TaskOut, tags=["chat"],
              responses={200: {"model": TaskOut, "description": "With ?wait=true: the finished task."}})
    async def post_chat(body: ChatIn, response: Response, wait: bool = Query(False, description="Block until the task finishes."),
                        timeout: float = Query(300.0, gt=0, le=3600, description="Seconds to wait with ?wait=true.")) -> TaskOut:
        if body.messages[-1].role != "user":
            raise HTTPException(422, "messages: the last message must have role 'user' (the question to answer)")
        if body.model_version and await asyncio.to_thread(store.get_version, body.model_version) is None:
            versions = [v.version for v in await asyncio.to_thread(store.list_versions)]
            raise HTTPException(404, f"unknown model_version {body.model_version!r}; available: {versions}")
        request = ChatRequest(tenant=body.tenant, conversation_id=body.conversation_id or new_id(), messages=body.messages,
                              options=ChatOptions(retrieval=body.retrieval, model_version=body.model_version, k=body.k,
                                                  max_new_tokens=body.max_new_tokens), reference=body.reference)
        await asyncio.to_thread(store.create_task, task_from_request(request))
        await publisher.publish(request)
        task = await asyncio.to_thread(store.get_task, request.task_id)
        if wait:
            deadline = time.monotonic() + timeout
            while task is not None and task.status not in TERMINAL_TASK_STATES and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                task = await asyncio.to_thread(store.get_task, request.task_id)
            if task is not None and task.status in TERMINAL_TASK_STATES:
                response.status_code = 200
        assert task is not None
        return TaskOut.of(task)

    @app.get("/v1/tasks/{task_id}", response_model=TaskOut, tags=["chat"])
    async def get_task(task_id: str) -> TaskOut:
        row = await asyncio.to_thread(store.get_task, task_id)
        if row is None:
            raise HTTPException(404, f"unknown task_id {task_id!r}")
        return TaskOut.of(row)

    @app.post("/v1/feedback", status_code=202, response_model=FeedbackAccepted, tags=["feedback"])
    async def post_feedback(body: FeedbackIn) -> FeedbackAccepted:
        task = await asyncio.to_thread(store.get_task, body.task_id)
        if task is None:
            raise HTTPException(404, f"unknown task_id {body.task_id!r}")
        event = FeedbackEvent(tenant=task.tenant, task_id=body.task_id, rating=body.rating, correction=body.correction, comment=body.comment)
        await publisher.publish(event)
        return FeedbackAccepted(feedback_id=event.event_id, task_id=body.task_id)

    @app.get("/v1/models", response_model=ModelList, tags=["models"])
    async def list_models() -> ModelList:
        rows = [ModelOut.of(r) for r in await asyncio.to_thread(store.list_versions, settings.model_family)]
        return ModelList(models=rows, data=rows)

    return app


def jsonable(errors: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
