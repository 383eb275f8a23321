"""Request and response bodies of the HTTP API (published in the OpenAPI document).

The task view (`TaskOut`) is in `streams/task_view.py`: the CLI and the callbacks role send it too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.events import Identifier, NonEmpty, Principal, VersionId, require_one_body
from schemas.tables import DocumentRecord, ModelDecisionRecord, ModelVersionRecord
from streams.gateway.chat_images import ChatTurnIn

MAX_TEXT_CHARS = 64 * 1024 * 1024
"""`text` is bounded like file bytes are: by RAGLOOP_FETCH_MAX_BYTES (UTF-8 bytes, checked by the route), and never above this."""


class DocumentIn(BaseModel):
    """Exactly one body: `text`, a `url` to fetch (HTML, PDF, Markdown, JSON…), or `content_b64` file bytes."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field("", max_length=1000)
    text: NonEmpty | None = Field(None, max_length=MAX_TEXT_CHARS, description="At most RAGLOOP_FETCH_MAX_BYTES bytes as UTF-8.")
    url: str | None = Field(None, pattern=r"^https?://", max_length=4000)
    content_b64: NonEmpty | None = None
    media_type: str | None = Field(None, description="Format of content_b64, e.g. application/pdf (else from filename).")
    filename: str | None = None
    document_id: Identifier | None = Field(None, validation_alias=AliasChoices("document_id", "id"),
                                           description="Stable id (the same name as in events and responses; `id` is accepted too); "
                                                       "re-posting the same id replaces the document.")
    tenant: Identifier = "default"
    metadata: dict[str, Any] = Field(default_factory=dict)
    access: list[str] = Field(default_factory=list, description="Principals allowed to read it; empty = the whole tenant.")

    @field_validator("url")
    @classmethod
    def _parsable_url(cls, url: str | None) -> str | None:
        """A host and a port in 1..65535, checked here so a bad URL is a 422, not a crash of the route."""
        if url is None:
            return url
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 — raises ValueError for a port out of range or not a number
        except ValueError as error:
            raise ValueError(f"not a valid URL ({error}); the port must be a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError("the URL names no host")
        if parts.port == 0:
            raise ValueError("port 0 is not a valid port; the port must be a number from 1 to 65535")
        return url

    @model_validator(mode="after")
    def _one_body(self) -> DocumentIn:
        return require_one_body(self)


class DocumentAccepted(BaseModel):
    document_id: str
    status: str


class DocumentOut(BaseModel):
    document_id: str
    tenant: str
    title: str
    status: Literal["queued", "indexing", "indexed", "failed", "deleted"]
    error: str | None
    chunks: int
    updated_at: datetime

    @classmethod
    def of(cls, row: DocumentRecord) -> DocumentOut:
        return cls(document_id=row.id, tenant=row.tenant, title=row.title, status=row.status, error=row.error,
                   chunks=row.chunks, updated_at=row.updated_at)


PRINCIPALS = ("Who is asking: documents ingested with an access list are retrieved only for a principal on it. "
              "Honoured with auth off; with auth on, the API key's principals (RAGLOOP_API_KEYS) are used instead.")


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[ChatTurnIn] = Field(min_length=1, description="The conversation so far; the last message is the user's question. "
                                       "Content is text, or OpenAI-style parts: `text` and `image_url` (data: or https: URLs).")
    conversation_id: Identifier | None = None
    tenant: Identifier = "default"
    principals: list[Principal] = Field(default_factory=list, max_length=100, description=PRINCIPALS)
    retrieval: bool = True
    model_version: VersionId | None = None
    k: int | None = Field(None, ge=1, le=50)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    reference: str | None = Field(None, description="A known good answer; the eval worker scores against it.")
    priority: Literal["normal", "high"] = "normal"
    stream: bool | None = Field(None, description="Publish token deltas for GET /v1/tasks/{id}/events; default: on unless ?wait=true.")
    callback_url: str | None = Field(None, max_length=2000, pattern=r"^(https?|slack)://",
                                      description="Receives the finished task as a signed POST (slack:// addresses are made by the Slack adapter).")

    @model_validator(mode="after")
    def _ends_with_user(self) -> ChatIn:
        if self.messages[-1].role != "user":
            raise ValueError("the last message must have role 'user' (the question to answer)")
        return self


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: Identifier
    rating: Literal["up", "down"]
    correction: str | None = Field(None, min_length=1, max_length=4000, description="The answer the model should have given.")
    comment: str | None = Field(None, max_length=4000)


class FeedbackAccepted(BaseModel):
    feedback_id: str
    task_id: str


class ModelOut(BaseModel):
    version: str
    family: str
    state: str = Field(description="The version's state as the caller's tenant sees it: `active` for the one version that answers "
                       "its requests (its own active version, else the shared one); the shared active version is `standby` while "
                       "the tenant's own version replaces it. `line_state` is the registry's state on the version's own line.")
    tenant: str | None = Field(None, description="The tenant whose line the version is on; null: the shared line (base model, shared adapters).")
    line_state: str = Field(description="candidate, canary, active, retired, rejected or rolled_back on the version's own line.")
    serving: bool = Field(False, description="Answers some of the caller's requests now: its active version, or its canary.")
    canary_share: float | None = Field(None, description="Share of the tenant's conversations a canary answers.")
    adapter_path: str | None = Field(None, description="The adapter's name (its artifact folder), never a server path; null: base weights.")
    recipe: str | None = None
    parent: str | None
    metrics: dict[str, Any]
    created_at: datetime
    # OpenAI-compatible fields, so `client.models.list()` works against the same endpoint.
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragloop"

    @classmethod
    def of(cls, row: ModelVersionRecord, *, state: str | None = None, serving: bool = False) -> ModelOut:
        location = row.artifact_uri or row.adapter_path
        return cls(version=row.version, family=row.family, state=state or row.state, tenant=row.tenant, line_state=row.state,
                   serving=serving, canary_share=row.canary_share, adapter_path=PurePath(location).name if location else None,
                   recipe=row.recipe, parent=row.parent, metrics=row.metrics, created_at=row.created_at, id=row.version,
                   created=int(row.created_at.timestamp()))


class ModelList(BaseModel):
    models: list[ModelOut]
    object: Literal["list"] = "list"
    data: list[ModelOut]
    tenant: str | None = Field(None, description="Whose view this is: the API key's tenant (with auth off, the `tenant` query parameter).")
    active_for_tenant: str | None = Field(None, description="The version that answers the tenant's requests outside a canary.")
    canary: str | None = Field(None, description="The tenant's canary, if one is running.")


class ModelActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, min_length=1, max_length=4000, description="Why; recorded in the audit trail.")


class ModelDecisionOut(BaseModel):
    version: str
    tenant: str | None
    action: str = Field(description="candidate, canary, promote, retire, reject, rollback or share.")
    actor: str = Field(description="auto:gate, auto:canary, api:<tenant>, cli.")
    reason: str
    numbers: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, row: ModelDecisionRecord) -> ModelDecisionOut:
        return cls(version=row.version, tenant=row.tenant, action=row.action, actor=row.actor, reason=row.reason, numbers=row.numbers, at=row.at)


class ModelDecisionList(BaseModel):
    decisions: list[ModelDecisionOut] = Field(description="Oldest first.")


class ModelActionOut(BaseModel):
    decision: ModelDecisionOut
    model: ModelOut = Field(description="The version after the action.")
    active_for_tenant: str = Field(description="What now answers the tenant's requests outside a canary.")
