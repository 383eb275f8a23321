"""OpenAI-compatible chat completions, so existing OpenAI clients talk to ragloop unchanged.

Each completion is an ordinary chat task (same queue, retries, metrics); `model` picks a model
version (the family name or `ragloop` means the active one). Streaming relays the task's token
deltas as `chat.completion.chunk` events and ends with `data: [DONE]`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.sse import format_sse_event
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.events import Principal
from streams.gateway.api_models import PRINCIPALS, ChatIn
from streams.gateway.auth import principals_of, tenant_of
from streams.gateway.chat_images import ChatTurnIn, check_chat
from streams.gateway.context import GatewayContext
from streams.gateway.routes.chat import VERSION_HEADER_DOC, chat_request, ensure_model_version, mark_version, submit
from streams.task_view import TaskResult


class CompletionIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send fields ragloop does not use (n, seed, …)
    model: str = "ragloop"
    messages: list[ChatTurnIn] = Field(min_length=1, description="Text, or content parts: `text` and `image_url` (data: or https: URLs).")
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    user: str | None = None
    retrieval: bool = Field(True, description="ragloop extension (pass with extra_body): False answers without retrieval.")
    principals: list[Principal] = Field(default_factory=list, max_length=100, description=f"ragloop extension (extra_body). {PRINCIPALS}")


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(tags=["openai"])

    def version_of(model: str) -> str | None:
        return None if model in ("ragloop", ctx.settings.llm.model_family, "") else model

    @api.post("/v1/chat/completions", response_model=None, responses={200: {"headers": VERSION_HEADER_DOC}})
    async def completions(body: CompletionIn, request: Request, response: Response,
                          idempotency_key: str | None = Header(None, max_length=200, pattern=r"^[^#]+$")) -> Any:
        version, tenant = version_of(body.model), tenant_of(request, "default")
        await ensure_model_version(ctx, version, request, tenant)
        checked = await check_chat(body.messages, ctx.settings)  # images checked (422/413 saying why), fetched and noted
        try:  # rules of a chat the completion's own schema does not state (the last message is the user's)
            chat = ChatIn(messages=[ChatTurnIn(role=t.role, content=t.content) for t in checked.turns],
                          model_version=version, retrieval=body.retrieval, tenant=tenant,
                          principals=principals_of(request, body.principals), stream=body.stream,
                          max_new_tokens=body.max_completion_tokens or body.max_tokens)
        except ValidationError as error:
            raise HTTPException(422, "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())) from None
        task, _ = await submit(ctx, chat_request(ctx, chat, checked.images), idempotency_key)
        completion_id, created = f"chatcmpl-{task.id}", int(time.time())
        if body.stream:
            return StreamingResponse(_chunks(task.id, completion_id, created, body.model), media_type="text/event-stream")
        done = await ctx.tasks.wait(task.id, timeout_s=3600)
        if done is None or done.status != "succeeded" or not done.result:
            raise HTTPException(502 if done and done.status == "failed" else 504,
                                f"task {task.id} ended {done.status if done else 'missing'}: {done.error if done else ''}")
        result = TaskResult.of(done.result)
        mark_version(response, done)
        usage = result.usage
        prompt_tokens, completion_tokens = usage.get("prompt_tokens", 0), usage.get("completion_tokens", usage.get("stream_deltas", 0))
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": result.model_version,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
            "citations": result.citations,
        }

    async def _chunks(task_id: str, completion_id: str, created: int, model: str) -> AsyncIterator[bytes]:
        def data(payload: dict[str, Any]) -> bytes:
            return format_sse_event(data_str=json.dumps(payload))

        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            return data({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        yield chunk({"role": "assistant"})
        async for item in ctx.tasks.events(task_id):
            if item.kind == "token":
                yield chunk({"content": item.data["delta"]})
            elif item.kind == "result":
                if item.data["status"] != "succeeded":
                    yield data({"error": {"message": f"task {task_id} {item.data['status']}: {item.data['error']}", "type": "task_failed"}})
                else:  # headers left before the answer was chosen: the last chunk names the version that answered
                    model = (item.data.get("result") or {}).get("model_version") or model
                    yield chunk({}, "stop")
        yield format_sse_event(data_str="[DONE]")

    return api
