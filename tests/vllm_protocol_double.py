"""A test double of vLLM's OpenAI-compatible server, over a real engine.

`models.llm.OpenAICompatibleEngine` is ragloop's client of vLLM. vLLM needs a GPU and is not run
where ragloop is tested, so the engine is tested against this double instead: real generation (the
engine it wraps) behind the routes, status codes and bodies vLLM documents. Every answer below is
pinned to vLLM's own code, cited next to it; `tests/unit/test_vllm_protocol_double.py` checks the
double still answers that way. What the double cannot show is whether vLLM itself still does: the
engine has not run against a real vLLM here (docs/engines.md says so).

Sources (vllm-project/vllm):
- docs: https://docs.vllm.ai/en/latest/features/lora/ ("Dynamically serving LoRA Adapters": the
  routes exist only with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`; `/v1/models` lists each adapter
  with its `parent`).
- `vllm/entrypoints/serve/lora/api_router.py`: `/v1/load_lora_adapter`, `/v1/unload_lora_adapter`
  registered only when `envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING`; success is
  `Response(status_code=200, content=<message>)` (plain text), errors are the JSON `ErrorResponse`
  with the HTTP status in `error.code`.
- `vllm/entrypoints/serve/lora/protocol.py`: `LoadLoRAAdapterRequest {lora_name, lora_path}`,
  `UnloadLoRAAdapterRequest {lora_name, lora_int_id?}`.
- `vllm/entrypoints/openai/models/serving.py` (`OpenAIServingModels`): the model cards, the check
  and success messages of load/unload, `check_model`'s 404 for an unknown model.
- `vllm/entrypoints/serve/exception_handling/error_response.py` and `.../engine/protocol.py`:
  `ErrorResponse {"error": {"message", "type", "param", "code"}}`; `LoRAAdapterNotFoundError`
  ("Loading lora NAME failed: No adapter found for PATH") becomes a 404 `NotFoundError`.

    with serve(create_app(engine, "smollm2")) as base_url:   # "http://127.0.0.1:PORT/v1"
        ...
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from models.llm.base import ChatMessage, GenerationParams, LLMEngine
from models.llm.chat_format import encode_prompt
from streams.gateway.server import serve_in_thread


class ChatCompletionRequest(BaseModel):
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class LoadLoRARequest(BaseModel):
    """vLLM's `LoadLoRAAdapterRequest` (serve/lora/protocol.py); `load_inplace` is read by
    `OpenAIServingModels` in current vLLM (replace a loaded name instead of refusing it)."""

    lora_name: str
    lora_path: str
    load_inplace: bool = False


class UnloadLoRARequest(BaseModel):
    """vLLM's `UnloadLoRAAdapterRequest` (serve/lora/protocol.py)."""

    lora_name: str
    lora_int_id: int | None = None


def _error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    """vLLM's `ErrorResponse.model_dump()`: `code` is the HTTP status as an int (not OpenAI's string)."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status_code=status)


def create_app(engine: LLMEngine, model_name: str, *, runtime_lora: bool = True) -> FastAPI:
    """vLLM serving ``model_name`` with ``--enable-lora``; ``runtime_lora`` stands for
    ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``.

    Two knobs are not vLLM: ``app.state.omit_usage = True`` leaves ``usage`` out like some other
    OpenAI-compatible servers do (vLLM always sends it), and ``app.state.requests`` records every
    chat request body as received."""
    app = FastAPI()
    app.state.omit_usage = False
    app.state.requests = []
    served: dict[str, str] = {}  # adapter name -> path, as the server knows them

    def count(text: str) -> int:
        return len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])  # type: ignore[attr-defined]

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        # OpenAIServingModels.show_available_models: the base model (root = its path, no parent),
        # then one card per loaded adapter with root = the adapter's path, parent = the base model.
        def card(ident: str, root: str, parent: str | None) -> dict[str, Any]:
            return {"id": ident, "object": "model", "created": int(time.time()), "owned_by": "vllm", "root": root, "parent": parent}

        cards = [card(model_name, model_name, None)] + [card(n, p, model_name) for n, p in served.items()]
        return {"object": "list", "data": cards}

    @app.post("/v1/chat/completions", response_model=None)
    def chat(request: ChatCompletionRequest) -> Any:
        app.state.requests.append(request.model_dump(exclude_unset=True))
        if request.model != model_name and request.model not in served:  # OpenAIModelRegistry.check_model
            return _error(404, f"The model `{request.model}` does not exist.", "NotFoundError", param="model")
        adapter = None if request.model == model_name else request.model
        stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
        params = GenerationParams(
            max_new_tokens=request.max_completion_tokens or request.max_tokens or 128,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=stops,
        )
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not request.stream:
            generation = engine.generate(request.messages, params, adapter=adapter)
            body: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": request.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": generation.text},
                        "finish_reason": generation.finish_reason,
                    }
                ],
            }
            if not app.state.omit_usage:
                body["usage"] = {
                    "prompt_tokens": generation.prompt_tokens,
                    "completion_tokens": generation.completion_tokens,
                    "total_tokens": generation.prompt_tokens + generation.completion_tokens,
                }
            return body

        include_usage = bool((request.stream_options or {}).get("include_usage")) and not app.state.omit_usage

        def events() -> Iterator[str]:
            def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                payload = {"id": ident, "object": "chat.completion.chunk", "created": created,
                           "model": request.model, "choices": [choice]}
                return f"data: {json.dumps(payload)}\n\n"

            yield chunk({"role": "assistant", "content": ""})
            text = ""
            for delta in engine.stream(request.messages, params, adapter=adapter):
                text += delta
                yield chunk({"content": delta})
            completion = count(text)
            finish = "length" if completion >= params.max_new_tokens else "stop"
            yield chunk({}, finish)
            if include_usage:
                prompt = len(encode_prompt(engine.tokenizer, request.messages))  # type: ignore[attr-defined]
                usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
                payload = {"id": ident, "object": "chat.completion.chunk", "created": created,
                           "model": request.model, "choices": [], "usage": usage}
                yield f"data: {json.dumps(payload)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(_closing(events()), media_type="text/event-stream")

    if runtime_lora:  # serve/lora/api_router.py attaches these routes only with the env flag set

        @app.post("/v1/load_lora_adapter", response_model=None)
        def load_lora_adapter(request: LoadLoRARequest) -> Any:
            # OpenAIServingModels._check_load_lora_adapter_request, then engine_client.add_lora
            if not request.lora_name or not request.lora_path:
                return _error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
            if not request.load_inplace and request.lora_name in served:
                return _error(400, f"The lora adapter '{request.lora_name}' has already been loaded. If you want to "
                                   "load the adapter in place, set 'load_inplace' to True.", "InvalidUserInput")
            if not (Path(request.lora_path) / "adapter_config.json").exists():  # LoRAAdapterNotFoundError
                return _error(404, f"Loading lora {request.lora_name} failed: No adapter found for {request.lora_path}",
                              "NotFoundError")
            engine.load_adapter(request.lora_name, Path(request.lora_path))
            served[request.lora_name] = request.lora_path
            return Response(f"Success: LoRA adapter '{request.lora_name}' added successfully.", status_code=200)

        @app.post("/v1/unload_lora_adapter", response_model=None)
        def unload_lora_adapter(request: UnloadLoRARequest) -> Any:
            # OpenAIServingModels._check_unload_lora_adapter_request
            if not request.lora_name:
                return _error(400, "'lora_name' needs to be provided to unload a LoRA adapter.", "InvalidUserInput")
            if served.pop(request.lora_name, None) is None:
                return _error(404, f"The lora adapter '{request.lora_name}' cannot be found.", "NotFoundError")
            return Response(f"Success: LoRA adapter '{request.lora_name}' removed successfully.", status_code=200)

    return app


async def _closing(events: Iterator[str]) -> AsyncIterator[str]:
    """Stream a sync generator and close it when the client goes away.

    Starlette only drops its reference on disconnect; an engine stream left suspended would keep
    holding the engine's lock until garbage collection, stalling every later request.
    """
    try:
        async for item in iterate_in_threadpool(events):
            yield item
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_close_when_idle, events)


def _close_when_idle(events: Iterator[str]) -> None:
    while getattr(events, "gi_running", False):  # a worker thread may still be inside next()
        time.sleep(0.01)
    events.close()  # type: ignore[attr-defined]


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a thread; yields the ``/v1`` base URL."""
    with serve_in_thread(app) as url:
        yield f"{url}/v1"
