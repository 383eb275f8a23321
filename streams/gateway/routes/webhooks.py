"""Inbound webhooks: a generic signed webhook and the Slack Events API, each turning a message into a chat task.

Both check a signature over the raw body before reading it (401, and nothing enqueued, when it is
missing, wrong or outside the replay window), which is why they need no API key. The answer goes
back through the callbacks role (`streams/callbacks/`): to the generic webhook's
`callback_url`, or into the Slack thread the question came from.

The generic webhook is signed with a key of its own (`RAGLOOP_WEBHOOK_KEYS=key_id=secret=tenant|principal|…`),
never with the callback secret: every callback receiver holds that one, and must not be able to
ask questions as us. The key, like an API key, decides the tenant and principals; a body that
names others is refused (403) rather than silently re-scoped, so a misconfigured sender finds out.
The signature (`v2`) covers the delivery id, so a captured request replayed inside the window
under a new delivery id is refused; without a delivery id the signature itself is the
idempotency key, so a replay of the same request returns the same task.

    curl -X POST localhost:8000/v1/webhooks/generic -H "X-Ragloop-Key-Id: $KEY_ID" -H "X-Ragloop-Timestamp: $TS" \
         -H "X-Ragloop-Delivery: d-123" \
         -H "X-Ragloop-Signature: v2=$(printf '%s.%s\n%s' "$TS" d-123 "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)" \
         -d "$BODY"
"""

from __future__ import annotations

import hmac
import html
import json
import re
from typing import Annotated, Any, NamedTuple, TypeVar

import structlog
from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.datastructures import Headers

from schemas.events import ChatTurn, Identifier, NonEmpty, Principal
from schemas.settings import Settings
from streams.callbacks.slack import slack_reply_url
from streams.gateway.api_models import ChatIn
from streams.gateway.auth import KeyGrant, parse_grants
from streams.gateway.context import GatewayContext
from streams.gateway.routes.chat import chat_request, submit
from streams.signing import DELIVERY_HEADER, RAGLOOP_V2, SLACK, SignatureError, SigningScheme

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
# Message subtypes that are still a person writing; every other subtype (edits, joins, bots) is not a question.
_HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
KEY_ID_HEADER = "X-Ragloop-Key-Id"
_DELIVERY = re.compile(r"[^#\x00-\x1f\x7f]{1,200}")  # no `#`: it separates an idempotency key from its principals


class WebhookKey(NamedTuple):
    """One inbound webhook key: the secret its requests are signed with, and what they may act as."""

    secret: str
    grant: KeyGrant


def parse_webhook_keys(settings: Settings) -> dict[str, WebhookKey]:
    """`RAGLOOP_WEBHOOK_KEYS` → {key id: WebhookKey}. Raises ValueError naming a bad entry, or a key
    whose secret is the callback secret (which every callback receiver holds)."""
    raw = settings.security.webhook_keys.get_secret_value() if settings.security.webhook_keys else ""
    keys = {key_id: WebhookKey(secret, grant) for (key_id, secret), grant in parse_grants(
        raw, "RAGLOOP_WEBHOOK_KEYS", "`key_id=secret=tenant` or `key_id=secret=tenant|principal|…` (expected e.g. "
        "`crm=3f9c0d…=acme|group:sales`; ids and secrets hold no `=` or `,`)", names=2)}
    callback = settings.security.callback_signing_secret()
    for key_id, key in keys.items():
        if callback is not None and hmac.compare_digest(key.secret.encode(), callback.get_secret_value().encode()):
            raise ValueError(f"RAGLOOP_WEBHOOK_KEYS key {key_id!r} has the callback secret (RAGLOOP_CALLBACK_SECRET or "
                             "RAGLOOP_WEBHOOK_SECRET); every callback receiver holds that one, so give the key a secret of its own")
    return keys


class WebhookIn(BaseModel):
    """A question from any system that can sign a POST: `text`, or a whole conversation as `messages`."""

    model_config = ConfigDict(extra="forbid")
    text: NonEmpty | None = Field(None, description="The question (shorthand for one user message).")
    messages: list[ChatTurn] | None = Field(None, min_length=1, description="The conversation so far; the last message is the question.")
    conversation_id: Identifier | None = None
    tenant: Identifier = Field("default", description="Optional: the webhook key's tenant. Another one is refused (403).")
    principals: list[Principal] = Field(default_factory=list, max_length=100, description=(
        "Optional: the webhook key's principals (who is asking, for documents ingested with an access list). "
        "Others are refused (403): the key decides, as an API key does."))
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
    keys = parse_webhook_keys(settings)

    @api.post("/generic", status_code=202, response_model=WebhookAccepted,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _schema(WebhookIn)}}}},
              responses={200: {"model": WebhookAccepted, "description": "A repeated delivery: the task it created before."},
                         401: {"description": "Unknown key id, missing or wrong signature, or a timestamp outside the replay window."},
                         403: {"description": "The body names a tenant or principals other than the key's."}})
    async def generic(request: Request, response: Response,
                      # Declared so the OpenAPI document shows them; the signature check reads the raw headers.
                      x_ragloop_key_id: Annotated[str | None, Header(description="Id of a key in RAGLOOP_WEBHOOK_KEYS.")] = None,
                      x_ragloop_timestamp: Annotated[str | None, Header(description="Unix seconds when the request was signed.")] = None,
                      x_ragloop_signature: Annotated[str | None, Header(description=(
                          '`v2=` + hex HMAC-SHA256(key secret, f"{timestamp}.{delivery}\\n{raw_body}"), delivery "" when not sent.'))] = None,
                      x_ragloop_delivery: Annotated[str | None, Header(description=(
                          "Your delivery id (signed, no `#`); a retried delivery returns the same task."))] = None,
                      ) -> WebhookAccepted:
        """A signed question becomes a chat task (202) of the key's tenant and principals; its answer
        is POSTed, signed with the callback secret, to `callback_url`."""
        raw = await request.body()
        key = _webhook_key(keys, x_ragloop_key_id, settings)
        _verify(RAGLOOP_V2, key.secret, raw, request.headers, settings.security.webhook_tolerance_s)
        if x_ragloop_delivery is not None and not _DELIVERY.fullmatch(x_ragloop_delivery):
            raise HTTPException(422, f"{DELIVERY_HEADER} must be 1 to 200 printable characters without `#`")
        body = _validated(WebhookIn, raw)
        _within_grant(body, key.grant, x_ragloop_key_id or "")
        # The delivery id is signed; without one, the signature (fixed by timestamp and body) keys the task,
        # so a replay of the same request inside the window finds the task it made.
        delivery = x_ragloop_delivery or "sig:" + RAGLOOP_V2.signature(key.secret, x_ragloop_timestamp or "", raw)[3:43]
        question = _validated(ChatIn, {"messages": [t.model_dump() for t in body.turns()], "conversation_id": body.conversation_id,
                                       "tenant": key.grant.tenant, "principals": list(key.grant.principals),
                                       "callback_url": body.callback_url})
        task, created = await submit(ctx, chat_request(ctx, question), f"webhook:{x_ragloop_key_id}:{delivery}")
        if not created:
            response.status_code = 200
        return WebhookAccepted(task_id=task.id, status=task.status)

    @api.post("/slack", responses={401: {"description": "Missing or wrong Slack signature, or a stale timestamp."}})
    async def slack(request: Request,
                    x_slack_retry_num: Annotated[str | None, Header(description="Set by Slack on a redelivery.")] = None) -> dict[str, Any]:
        """Slack Events API: answers `url_verification`, and turns `message` / `app_mention` events into
        chat tasks answered in the message's thread. Retries and duplicate events map to the same task."""
        raw = await request.body()
        if settings.slack.signing_secret is None:
            raise HTTPException(401, "this webhook is not configured: the server has no RAGLOOP_SLACK_SIGNING_SECRET")
        _verify(SLACK, settings.slack.signing_secret.get_secret_value(), raw, request.headers, settings.security.webhook_tolerance_s)
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


def _webhook_key(keys: dict[str, WebhookKey], key_id: str | None, settings: Settings) -> WebhookKey:
    """The key a generic webhook names (401 naming what to fix when there is none)."""
    if not keys:
        legacy = (" (RAGLOOP_WEBHOOK_SECRET signs outbound callbacks only: every callback receiver holds it)"
                  if settings.security.webhook_secret is not None else "")
        raise HTTPException(401, f"this webhook is not configured: the server has no RAGLOOP_WEBHOOK_KEYS{legacy}")
    if not key_id:
        raise HTTPException(401, f"missing {KEY_ID_HEADER} header: name the key (from RAGLOOP_WEBHOOK_KEYS) that signed the request")
    key = keys.get(key_id)
    if key is None:
        raise HTTPException(401, f"unknown {KEY_ID_HEADER} {key_id[:200]!r}: it is not a key of RAGLOOP_WEBHOOK_KEYS")
    return key


def _within_grant(body: WebhookIn, grant: KeyGrant, key_id: str) -> None:
    """403 when the body names a tenant or principals its key was not given (leaving them out is fine)."""
    if "tenant" in body.model_fields_set and body.tenant != grant.tenant:
        raise HTTPException(403, f"webhook key {key_id!r} acts for tenant {grant.tenant!r}, not {body.tenant!r}: "
                                 "leave `tenant` out, or sign with a key of that tenant")
    if "principals" in body.model_fields_set and set(body.principals) != set(grant.principals):
        raise HTTPException(403, f"webhook key {key_id!r} asks as principals {sorted(grant.principals)}, not {sorted(set(body.principals))}: "
                                 "leave `principals` out, or sign with a key granted them")


def _verify(scheme: SigningScheme, secret: str, raw: bytes, headers: Headers, tolerance_s: float) -> None:
    try:
        scheme.verify(secret, raw, headers, tolerance_s=tolerance_s)
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
