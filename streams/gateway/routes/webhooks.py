"""Inbound webhooks: a generic signed webhook and the Slack Events API, each turning a message into a chat task.

Both check a signature over the raw body before reading it (401, and nothing enqueued, when it is
missing, wrong or outside the replay window), which is why they need no API key. The answer goes
back through the callbacks role (`streams/callbacks/`): to the generic webhook's
`callback_url`, or into the Slack thread the question came from.

    curl -X POST localhost:8000/v1/webhooks/generic -H "X-Ragloop-Timestamp: $TS" \
         -H "X-Ragloop-Signature: v1=$(printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)" \
         -H "X-Ragloop-Delivery: d-123" -d "$BODY"
"""

from __future__ import annotations

import html
import json
import re
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from starlette.datastructures import Headers

from schemas.events import ChatTurn, Identifier, NonEmpty, Principal
from streams.callbacks.slack import slack_reply_url
from streams.gateway.api_models import ChatIn
from streams.gateway.context import GatewayContext
from streams.gateway.routes.chat import chat_request, submit
from streams.signing import DEFAULT_TOLERANCE_S, RAGLOOP, SLACK, SignatureError, SigningScheme

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
# Message subtypes that are still a person writing; every other subtype (edits, joins, bots) is not a question.
_HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})


class WebhookIn(BaseModel):
    """A question from any system that can sign a POST: `text`, or a whole conversation as `messages`."""

    model_config = ConfigDict(extra="forbid")
    text: NonEmpty | None = Field(None, description="The question (shorthand for one user message).")
    messages: list[ChatTurn] | None = Field(None, min_length=1, description="The conversation so far; the last message is the question.")
    conversation_id: Identifier | None = None
    tenant: Identifier = "default"
    principals: list[Principal] = Field(default_factory=list, max_length=100, description=(
        "Who is asking: documents ingested with an access list are retrieved only for a principal on it. "
        "The signature vouches for it, as it does for `tenant`."))
    callback_url: str | None = Field(None, max_length=2000, description="Receives the finished task as a signed POST.")

    @model_validator(mode="after")
    def _one_question(self) -> WebhookIn:
        if (self.text is None) == (self.messages is None):
            raise ValueError("send exactly one of `text` or `messages`")
        return self

    @field_validator("callback_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("callback_url must be an http:// or https:// URL")
        return value

    def turns(self) -> list[ChatTurn]:
        return self.messages or [ChatTurn(role="user", content=self.text or "")]


class WebhookAccepted(BaseModel):
    task_id: str
    status: str


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
    settings = ctx.settings

    @api.post("/generic", status_code=202, response_model=WebhookAccepted,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _schema(WebhookIn)}}}},
              responses={200: {"model": WebhookAccepted, "description": "A repeated delivery: the task it created before."},
                         401: {"description": "Missing or wrong signature, or a timestamp outside the replay window."}})
    async def generic(request: Request, response: Response,
                      # Declared so the OpenAPI document shows them; the signature check reads the raw headers.
                      x_ragloop_timestamp: Annotated[str | None, Header(description="Unix seconds when the request was signed.")] = None,
                      x_ragloop_signature: Annotated[str | None, Header(description='`v1=` + hex HMAC-SHA256(secret, f"{timestamp}.{raw_body}").')] = None,
                      x_ragloop_delivery: Annotated[str | None, Header(description="Your delivery id; a retried delivery returns the same task.")] = None,
                      ) -> WebhookAccepted:
        """A signed question becomes a chat task (202); its answer is POSTed, signed, to `callback_url`."""
        raw = await request.body()
        _verify(RAGLOOP, settings.security.webhook_secret, "RAGLOOP_WEBHOOK_SECRET", raw, request.headers, settings.security.webhook_tolerance_s)
        body = _validated(WebhookIn, raw)
        if x_ragloop_delivery is not None and not 0 < len(x_ragloop_delivery) <= 200:
            raise HTTPException(422, "X-Ragloop-Delivery must be 1 to 200 characters")
        question = _validated(ChatIn, {"messages": [t.model_dump() for t in body.turns()], "conversation_id": body.conversation_id,
                                       "tenant": body.tenant, "principals": body.principals, "callback_url": body.callback_url})
        task, created = await submit(ctx, chat_request(ctx, question), f"webhook:{x_ragloop_delivery}" if x_ragloop_delivery else None)
        if not created:
            response.status_code = 200
        return WebhookAccepted(task_id=task.id, status=task.status)

    @api.post("/slack", responses={401: {"description": "Missing or wrong Slack signature, or a stale timestamp."}})
    async def slack(request: Request,
                    x_slack_retry_num: Annotated[str | None, Header(description="Set by Slack on a redelivery.")] = None) -> dict[str, Any]:
        """Slack Events API: answers `url_verification`, and turns `message` / `app_mention` events into
        chat tasks answered in the message's thread. Retries and duplicate events map to the same task."""
        raw = await request.body()
        _verify(SLACK, settings.slack.signing_secret, "RAGLOOP_SLACK_SIGNING_SECRET", raw, request.headers, DEFAULT_TOLERANCE_S)
        try:
            payload = json.loads(raw)
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        kind = payload.get("type")
        if kind == "url_verification":
            return {"challenge": payload.get("challenge", "")}
        if kind != "event_callback":
            return {"ok": True, "ignored": f"payload type {kind!r}"}
        event = payload.get("event") or {}
        ignored = _not_a_question(event)
        if ignored:
            return {"ok": True, "ignored": ignored}
        channel, ts = str(event["channel"]), str(event["ts"])
        thread_ts = str(event.get("thread_ts") or ts)
        text = html.unescape(_MENTION.sub("", event.get("text", ""))).strip()
        question = _validated(ChatIn, {"messages": [{"role": "user", "content": text}], "tenant": settings.slack.tenant,
                                       "conversation_id": f"slack:{channel}:{thread_ts}",
                                       "callback_url": slack_reply_url(settings, channel, thread_ts)})
        # Keyed by the message, not the event: a retry (X-Slack-Retry-Num) and the `message` +
        # `app_mention` pair Slack sends for one mention both land on the same task.
        task, created = await submit(ctx, chat_request(ctx, question), f"slack:{channel}:{ts}")
        if not created:
            log.info("slack event repeated", task_id=task.id, retry=x_slack_retry_num, event_id=payload.get("event_id"))
        return {"ok": True, "task_id": task.id}

    return api


def _verify(scheme: SigningScheme, secret: SecretStr | None, setting: str, raw: bytes, headers: Headers, tolerance_s: float) -> None:
    if secret is None:
        raise HTTPException(401, f"this webhook is not configured: the server has no {setting}")
    try:
        scheme.verify(secret.get_secret_value(), raw, headers, tolerance_s=tolerance_s)
    except SignatureError as error:
        raise HTTPException(401, str(error)) from None


def _validated(model: type[M], data: bytes | dict[str, Any]) -> M:
    """Validate what FastAPI did not (the body is read raw to check its signature); 422 as elsewhere."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from None


def _not_a_question(event: dict[str, Any]) -> str | None:
    """Why a Slack event is not answered (None when it is a person's question)."""
    if event.get("type") not in ("message", "app_mention"):
        return f"event type {event.get('type')!r}"
    if event.get("bot_id") or event.get("subtype") not in _HUMAN_SUBTYPES:
        return "bot message or message change"
    if not event.get("channel") or not event.get("ts"):
        return "event without channel or ts"
    if not _MENTION.sub("", event.get("text", "")).strip():
        return "empty text"
    return None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema for `openapi_extra`, its nested models referenced from the document's components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)  # ChatTurn is already a component (ChatIn uses it)
    return schema
