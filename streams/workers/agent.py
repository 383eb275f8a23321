"""Agent role: `chat.requests` → LangGraph agent → `chat.responses`; hot-swaps adapters on `model.updated`."""

from __future__ import annotations

import asyncio

import structlog

from agents.graph import AgentQuery
from models.llm.base import ChatMessage
from schemas.events import ChatRequest, ChatResponse, ChatTurn, Citation, ModelUpdated
from schemas.tables import TaskRecord
from streams.consumer import EventConsumer, PermanentError
from streams.metrics import ACTIVE_MODEL, TASK_SECONDS, TASKS
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

GROUP = "ragloop.agent"
log = structlog.get_logger(__name__)


def task_from_request(request: ChatRequest) -> TaskRecord:
    return TaskRecord(id=request.task_id, tenant=request.tenant, conversation_id=request.conversation_id,
                      request=request.model_dump(mode="json"))


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    store, settings = services.store, services.settings

    async def answer(request: ChatRequest) -> None:
        task = await asyncio.to_thread(store.get_task, request.task_id)
        if task is None:  # published straight to the topic by some producer, not through the gateway
            await asyncio.to_thread(store.create_task, task_from_request(request))
        elif task.status == "succeeded":  # redelivered after the effect: make sure the response went out
            await publisher.publish(ChatResponse.model_validate(task.result["response"]))
            return
        elif task.status in ("failed", "cancelled"):
            return
        if not await asyncio.to_thread(store.transition_task, request.task_id, from_states=("queued", "running"), to="running"):
            return  # cancelled meanwhile
        version = request.options.model_version or (await asyncio.to_thread(store.active_version, settings.model_family)).version
        try:
            adapter = await asyncio.to_thread(services.adapter_for, version)
        except LookupError as error:
            raise PermanentError(str(error)) from error
        turns = request.messages
        query = AgentQuery(question=turns[-1].content, history=[ChatMessage(role=t.role, content=t.content) for t in turns[:-1]],
                           tenant=request.tenant, retrieval=request.options.retrieval, k=request.options.k or settings.retrieval_k,
                           adapter=adapter, max_new_tokens=request.options.max_new_tokens or settings.max_new_tokens)
        result = await asyncio.to_thread(services.agent.answer, query)
        response = ChatResponse(
            event_id=f"{request.task_id}.response", tenant=request.tenant, trace=request.trace, task_id=request.task_id,
            conversation_id=request.conversation_id, question=query.question, answer=result.answer, model_version=version,
            citations=[Citation(document_id=h.chunk.document_id, chunk_id=h.chunk.id, title=h.chunk.title, score=h.score, text=h.chunk.text) for h in result.hits],
            prompt=[ChatTurn(role=m.role, content=m.content) for m in result.prompt],
            timings_ms=result.timings_ms, usage=result.usage, reference=request.reference,
        )
        stored = {"answer": response.answer, "citations": [c.model_dump() for c in response.citations],
                  "model_version": version, "timings_ms": response.timings_ms, "usage": response.usage,
                  "response": response.model_dump(mode="json")}
        if await asyncio.to_thread(store.transition_task, request.task_id, from_states=("running",), to="succeeded", result=stored, model_version=version, error=None):
            TASKS.labels("succeeded").inc()
            await publisher.publish(response)

    async def failed(request: ChatRequest, reason: str) -> None:
        if await asyncio.to_thread(store.transition_task, request.task_id, from_states=("queued", "running"), to="failed", error=reason):
            TASKS.labels("failed").inc()

    async def swap(update: ModelUpdated) -> None:
        if update.state == "active" and update.model_family == settings.model_family:
            await asyncio.to_thread(services.adapter_for, update.version)
            ACTIVE_MODEL.labels(update.model_family, update.version).set(1)
            log.info("model hot-swapped", version=update.version)

    return [
        EventConsumer(TOPICS["chat.requests"], GROUP, answer, on_dead_letter=failed),
        EventConsumer(TOPICS["model.updated"], GROUP + ".swap", swap, broadcast=True),
    ]
