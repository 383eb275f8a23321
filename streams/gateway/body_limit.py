"""Request body limits per route, enforced before anything reads the body.

FastAPI reads and parses a JSON body before any dependency runs, so without a limit an
unauthenticated caller could make the gateway buffer any amount of data before it is told 401
(and a webhook's signature is checked only after its body is read). This pure ASGI middleware
sits in front of all that: a declared `Content-Length` over the route's limit is answered 413 at
once, without calling the app; a chunked (or lying) body is counted as it streams and cut off
with a 413 the moment it passes the limit, so no more than the limit is ever read.

Limits (settings in the gateway section): documents, chat (both `/v1/chat` and the OpenAI
`/v1/chat/completions`), webhooks, and a default for everything else. The documents default
leaves room for `RAGLOOP_FETCH_MAX_BYTES` of file bytes sent as base64 (4/3 larger) plus the
JSON around them, so the two limits never contradict each other.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from schemas.settings import Settings
from streams.gateway.error_body import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_ALLOWANCE = 1024 * 1024  # room for the JSON around a base64 body: title, metadata, access list


def documents_default(fetch_max_bytes: int) -> int:
    """Room for the largest accepted file as base64 (4/3 of its size, rounded up) plus the JSON around it."""
    return -(-fetch_max_bytes // 3) * 4 + JSON_ALLOWANCE


@dataclass(frozen=True)
class BodyLimit:
    bytes: int
    setting: str  # the variable that raises it, named in the 413


def limit_for(settings: Settings, path: str) -> BodyLimit:
    gateway = settings.gateway
    if path.startswith("/v1/documents"):
        documents = gateway.max_body_bytes_documents or documents_default(settings.ingest.fetch_max_bytes)
        return BodyLimit(documents, "RAGLOOP_GATEWAY_MAX_BODY_BYTES_DOCUMENTS")
    if path == "/v1/chat" or path.startswith("/v1/chat/"):
        return BodyLimit(gateway.max_body_bytes_chat, "RAGLOOP_GATEWAY_MAX_BODY_BYTES_CHAT")
    if path.startswith("/v1/webhooks/"):
        return BodyLimit(gateway.max_body_bytes_webhooks, "RAGLOOP_GATEWAY_MAX_BODY_BYTES_WEBHOOKS")
    return BodyLimit(gateway.max_body_bytes_default, "RAGLOOP_GATEWAY_MAX_BODY_BYTES_DEFAULT")


class BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reader lets it through as is (any other error there
    becomes a 400) and the app's handler answers it as a 413 in the route's error shape."""

    def __init__(self, limit: BodyLimit) -> None:
        super().__init__(413, f"the request body is over the limit of {limit.bytes} bytes for this route; "
                              f"send less, or raise {limit.setting}")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(self.settings, scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit.bytes:
            await _refuse(scope, send, BodyTooLarge(limit))
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.bytes:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as too_large:
            if started:
                raise
            await _refuse(scope, send, too_large)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(scope: Scope, send: Send, error: BodyTooLarge) -> None:
    payload = json.dumps(error_body(scope["path"], error.status_code, error.detail)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
