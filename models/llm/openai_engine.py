"""LLM engine that talks to any OpenAI-compatible chat server: the cluster-mode backend.

vLLM (``vllm serve MODEL --enable-lora``), TGI, TensorRT-LLM and ragloop's own gateway all speak
``POST /v1/chat/completions``. vLLM serves each LoRA adapter as a *model name*, so the
per-request adapter is simply the ``model`` field, and new adapter versions are hot-loaded
through vLLM's runtime endpoint (server started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``).
Beyond ``max_adapters`` loaded by this client, the least recently used is unloaded
(``/unload_lora_adapter``); a request naming it loads it again first::

    engine = OpenAICompatibleEngine("http://gpu-1:8000/v1", "Qwen/Qwen2.5-1.5B-Instruct", max_adapters=8)
    engine.load_adapter("v7", Path("/adapters/v7"))      # a path on the *server's* disk
    engine.generate([ChatMessage(role="user", content="Hi")], adapter="v7").text

With ``vision=True`` (RAGLOOP_LLM_VISION=1: the served model takes images, e.g. a Qwen2-VL on vLLM)
``GenerationParams.images`` are sent as ``image_url`` content parts of the last user message, the
way OpenAI's API takes them; without it they are left out and the request is text only.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from models.llm.base import ChatMessage, Generation, GenerationParams
from models.llm.stop_strings import StopStringFilter, cut_at_stop
from schemas.content_parts import ImagePart, ImageUrl, TextPart

# Used only when a server omits ``usage``: roughly one token per word piece or punctuation mark.
_TOKEN_ESTIMATE = re.compile(r"\w+|[^\w\s]")


class EngineServerError(RuntimeError):
    """The server answered with an error status; carries the status and the server's message."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url} answered {status}: {message}")
        self.status = status
        self.message = message


class OpenAICompatibleEngine:
    """Implements :class:`models.llm.base.LLMEngine` over HTTP (chat completions + SSE).

    ``model`` is the base model's served name; ``None`` asks ``GET /v1/models`` for the first
    base model on first use. ``tokenizer`` (anything with ``encode(str) -> list``) makes token
    counts exact when a server omits ``usage``; without one they are estimated.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        tokenizer: Any | None = None,
        transport: httpx.BaseTransport | None = None,
        max_adapters: int = 8,
        vision: bool = False,
    ) -> None:
        if max_adapters < 1:
            raise ValueError(f"max_adapters must be at least 1, got {max_adapters}")
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.tokenizer = tokenizer
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0), transport=transport
        )
        self.max_adapters = max_adapters
        self.vision = vision
        self._adapter_paths: dict[str, str] = {}  # every adapter this client loaded: name → path on the server
        self._loaded: OrderedDict[str, None] = OrderedDict()  # loaded on the server now, least recently used first
        self._adapters_lock = threading.Lock()  # the LRU is shared by the threads of one process

    @property
    def model(self) -> str:
        if self._model is None:
            bases = [card["id"] for card in self._models() if not card.get("parent")]
            if not bases:
                raise RuntimeError(f"{self.base_url}/models lists no base model; pass model= explicitly")
            self._model = bases[0]
        return self._model

    @property
    def name(self) -> str:  # resolved lazily, from the server's model list
        return self.model

    @property
    def accepts_images(self) -> bool:
        return self.vision

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAICompatibleEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- generation -----------------------------------------------------------------------

    def generate(
        self,
        messages: list[ChatMessage],
        params: GenerationParams | None = None,
        *,
        adapter: str | None = None,
    ) -> Generation:
        params = params or GenerationParams()
        self._use(adapter)
        response = self._http.post("/chat/completions", json=self._payload(messages, params, adapter, stream=False))
        self._raise_for(response, adapter)
        body = response.json()
        choice = body["choices"][0]
        raw = choice.get("message", {}).get("content") or ""
        # Servers honour `stop`, but some echo the stop text; cutting again is harmless.
        text, hit = cut_at_stop(raw, params.stop)
        usage = body.get("usage") or {}
        return Generation(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or self._count_prompt(messages)),
            completion_tokens=int(usage.get("completion_tokens") or self._count(raw)),
            adapter=adapter,
            finish_reason="length" if choice.get("finish_reason") == "length" and not hit else "stop",
        )

    def stream(
        self,
        messages: list[ChatMessage],
        params: GenerationParams | None = None,
        *,
        adapter: str | None = None,
    ) -> Iterator[str]:
        """Yield text deltas from the server's SSE stream; closing the iterator closes the
        connection, which vLLM and ragloop's gateway take as a cancel."""
        params = params or GenerationParams()
        self._use(adapter)
        payload = self._payload(messages, params, adapter, stream=True)
        stops = StopStringFilter(params.stop)
        with self._http.stream("POST", "/chat/completions", json=payload) as response:
            if response.status_code >= 400:
                response.read()
                self._raise_for(response, adapter)
            for data in _sse_data(response.iter_lines()):
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    raise EngineServerError(self.base_url, 500, _message(event))
                for choice in event.get("choices") or []:
                    delta = stops.feed((choice.get("delta") or {}).get("content") or "")
                    if delta:
                        yield delta
                if stops.stopped:
                    return
        tail = stops.flush()
        if tail:
            yield tail

    # ---- adapters -------------------------------------------------------------------------

    def load_adapter(self, name: str, path: Path) -> None:
        """Ask the server to load the LoRA adapter at ``path`` (a path on the server) as ``name``.

        Same name and path again only marks it used; another path under a name this client loaded
        is refused with ValueError (a name is one set of weights: versions are content-addressed),
        matching :class:`TransformersEngine`. vLLM refuses a second load of a name with "has already
        been loaded", which is how an adapter loaded by another ragloop worker (or at server start
        with ``--lora-modules``) is recognised: that name holds the same weights, from its own copy.
        """
        path_text = str(path)
        with self._adapters_lock:
            known = self._adapter_paths.get(name)
            if known is not None and known != path_text:
                raise ValueError(f"adapter {name!r} was loaded from {known}, not {path_text}: a name is one set of weights "
                                 "forever; load new weights under a new name (their version id)")
            self._adapter_paths[name] = path_text
            try:
                self._ensure_loaded(name)
            except BaseException:
                if known is None:  # never loaded: forget the folder, so a corrected one can be given
                    del self._adapter_paths[name]
                raise

    def _use(self, adapter: str | None) -> None:
        """Before a request: mark its adapter used, loading it again if this client unloaded it."""
        if adapter is not None and adapter in self._adapter_paths:
            with self._adapters_lock:
                self._ensure_loaded(adapter)

    def _ensure_loaded(self, name: str) -> None:
        """Load ``name`` unless loaded, as the most recently used; unload the least recently used beyond
        ``max_adapters``. Lock held."""
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return
        self._load(name, self._adapter_paths[name])
        self._loaded[name] = None
        while len(self._loaded) > self.max_adapters:
            evicted, _ = self._loaded.popitem(last=False)
            response = self._http.post("/unload_lora_adapter", json={"lora_name": evicted})
            if response.status_code != 404:  # already gone (another worker unloaded it) is what we wanted
                self._raise_for(response, None, route="/unload_lora_adapter")

    def _load(self, name: str, path_text: str) -> None:
        response = self._http.post("/load_lora_adapter", json={"lora_name": name, "lora_path": path_text})
        if response.status_code == 400 and "already" in response.text.lower():
            return
        if response.status_code == 404 and _message_of(response) in ("Not Found", ""):
            raise RuntimeError(
                f"{self.base_url} has no /load_lora_adapter route; start vLLM with --enable-lora and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or pre-load adapters with --lora-modules NAME=PATH"
            )
        if response.status_code == 404:
            raise FileNotFoundError(f"server could not find adapter {name!r} at {path_text}: {_message_of(response)}")
        self._raise_for(response, None, route="/load_lora_adapter")

    def adapters(self) -> list[str]:
        """Adapter names the server serves now (``/v1/models`` entries that have a parent)."""
        return sorted(card["id"] for card in self._models() if card.get("parent") and card["id"] != self.model)

    # ---- internals ------------------------------------------------------------------------

    def _payload(
        self, messages: list[ChatMessage], params: GenerationParams, adapter: str | None, *, stream: bool
    ) -> dict[str, Any]:
        if not messages:
            raise ValueError("generation needs at least one message")
        payload: dict[str, Any] = {
            "model": adapter or self.model,
            "messages": self._messages(messages, params.images),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.stop:
            payload["stop"] = params.stop
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _messages(self, messages: list[ChatMessage], images: list[str]) -> list[dict[str, Any]]:
        """The messages as the server takes them; with vision, the images become parts of the last user message."""
        payload: list[dict[str, Any]] = [m.model_dump() for m in messages]
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        if self.vision and images and users:
            last = messages[users[-1]]
            parts = [TextPart(type="text", text=last.content),
                     *(ImagePart(type="image_url", image_url=ImageUrl(url=url)) for url in images)]
            payload[users[-1]] = {"role": "user", "content": [part.model_dump(exclude_none=True) for part in parts]}
        return payload

    def _models(self) -> list[dict[str, Any]]:
        response = self._http.get("/models")
        self._raise_for(response, None, route="/models")
        return list(response.json().get("data") or [])

    def _raise_for(self, response: httpx.Response, adapter: str | None, *, route: str = "/chat/completions") -> None:
        if response.status_code < 400:
            return
        if response.status_code == 404 and adapter is not None:
            raise KeyError(f"adapter {adapter!r} is not served by {self.base_url}; served: {self.adapters()}")
        raise EngineServerError(self.base_url + route, response.status_code, _message_of(response))

    def _count(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer.encode(text))
        return len(_TOKEN_ESTIMATE.findall(text))

    def _count_prompt(self, messages: list[ChatMessage]) -> int:
        return sum(self._count(m.content) for m in messages)


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` payload of each Server-Sent Event (multi-line data joined by newlines)."""
    buffer: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            buffer.append(line[5:].removeprefix(" "))
        elif not line.strip() and buffer:
            yield "\n".join(buffer)
            buffer = []
    if buffer:
        yield "\n".join(buffer)


def _message(body: Any) -> str:
    """The human message of an OpenAI-style (``{"error": {"message"}}``), vLLM or FastAPI error."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "detail"):
                if isinstance(error.get(key), str):
                    return error[key]
            return json.dumps(error)
        if isinstance(error, str):
            return error
    return str(body)


def _message_of(response: httpx.Response) -> str:
    try:
        return _message(response.json())
    except ValueError:
        return response.text.strip()
