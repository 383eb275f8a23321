"""Versioned event contracts: the payload of every topic in ARCHITECTURE.md.

Every event shares one envelope so any consumer can de-duplicate (`event_id`), route by tenant,
order by time and join a trace without knowing the payload. Models are strict (`extra="forbid"`)
so a producer's typo lands in the DLQ with the field named, instead of being silently ignored.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

NonEmpty = Annotated[str, Field(min_length=1)]
Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@/-]+$")]
# A model version id (`<family>@base`, `<family>@lora-<sha256[:12]>`, or a legacy `<family>-lora-<id>`): it names a folder
# of the artifact cache, so no '/', no '..', no leading dot or dash; models/artifacts.py's VERSION_ID is the same pattern.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*(?:@[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)?$"
VersionId = Annotated[str, Field(min_length=1, max_length=200, pattern=VERSION_PATTERN)]
# A model family (the part of a version id before '@'): it names folders too.
FamilyId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$")]
# Same shape as a document's `access` entries (free text), so any access list can be matched.
Principal = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


def principals_fingerprint(principals: Iterable[str]) -> str:
    """A short stable name for a set of principals (order and repeats ignored); '' for none.
    Scopes what one reader keeps (conversation memory, idempotency keys) away from other readers."""
    unique = sorted(set(principals))
    return hashlib.sha256("\n".join(unique).encode()).hexdigest()[:16] if unique else ""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A time without a zone read as UTC (SQLite hands stored times back naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class TraceContext(BaseModel):
    """W3C trace context carried across hops so one request can be followed through every worker."""

    model_config = ConfigDict(extra="forbid")
    traceparent: str | None = None
    tracestate: str | None = None


class Event(BaseModel):
    """The envelope. Subclasses fix `type` and `schema_version`; the key says how a topic partitions."""

    # JSON has no NaN or ±Infinity: pydantic would write them as null, which the same field then refuses
    # on the consumer's side. Refuse them where the event is made instead.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str = Field(default_factory=new_id, min_length=1, max_length=200)
    type: str
    schema_version: int = 1
    tenant: Identifier = "default"
    occurred_at: datetime = Field(default_factory=utcnow)
    trace: TraceContext = Field(default_factory=TraceContext)

    @model_validator(mode="after")
    def _supported_version(self) -> Event:
        if self.schema_version > self.SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is newer than supported ({self.SCHEMA_VERSION}) for {self.type}")
        return self

    def key(self) -> str:
        """Partition key; overridden where ordering matters (per document, per conversation…)."""
        return self.event_id

    def topic(self) -> str:
        """The topic this event is published to; its `type` unless a variant has its own topic."""
        return self.type


# --- documents ---------------------------------------------------------------------------------

DOCUMENT_BODIES = ("text", "url", "content_b64")


def require_one_body(document: Any) -> Any:
    """A document arrives as exactly one of its possible bodies; say which were given otherwise."""
    given = [name for name in DOCUMENT_BODIES if getattr(document, name) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of text, url or content_b64 (got {given or 'none'})")
    return document


class DocumentIngest(Event):
    """A document to (re)index, given as exactly one of: `text`, a `url` to fetch, or `content_b64` bytes."""

    type: Literal["docs.ingest"] = "docs.ingest"
    document_id: Identifier
    title: str = ""
    text: NonEmpty | None = None
    url: Annotated[str, Field(pattern=r"^https?://", max_length=4000)] | None = None
    content_b64: NonEmpty | None = Field(None, description="File bytes, base64; `media_type` or `filename` names the format.")
    media_type: str | None = None
    filename: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    access: list[str] = Field(default_factory=list, description="Principals allowed to read; empty = whole tenant.")

    @model_validator(mode="after")
    def _one_body(self) -> DocumentIngest:
        return require_one_body(self)

    def key(self) -> str:
        return self.document_id


class DocumentDelete(Event):
    type: Literal["docs.delete"] = "docs.delete"
    document_id: Identifier

    def key(self) -> str:
        return self.document_id


ProgressStage = Literal["queued", "parsed", "chunked", "embedded", "indexed", "deleted", "failed"]


class DocumentProgress(Event):
    type: Literal["docs.progress"] = "docs.progress"
    document_id: Identifier
    stage: ProgressStage
    reason: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)

    def key(self) -> str:
        return self.document_id


INDEXED_IDS_SHOWN = 16  # a 20 MB document has ~10^4 chunks: listing them all would not fit a message


class DocumentIndexed(Event):
    """A document is searchable. Stays small whatever the document's size: the chunk count and the
    first few chunk ids (the search backend holds them all, by `document_id`)."""

    type: Literal["docs.indexed"] = "docs.indexed"
    document_id: Identifier
    chunk_ids: list[str] = Field(default_factory=list, description=f"The first chunk ids (at most {INDEXED_IDS_SHOWN}).")
    chunks: int | None = Field(None, ge=0, description="How many chunks the document has (all of them, not only those listed).")

    @classmethod
    def of(cls, source: DocumentIngest, chunk_ids: Sequence[str]) -> DocumentIndexed:
        return cls(tenant=source.tenant, document_id=source.document_id, chunk_ids=list(chunk_ids[:INDEXED_IDS_SHOWN]),
                   chunks=len(chunk_ids), trace=source.trace)

    def key(self) -> str:
        return self.document_id


# --- chat --------------------------------------------------------------------------------------

class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: NonEmpty


class ChatOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retrieval: bool = Field(True, description="False answers from the model alone.")
    model_version: VersionId | None = Field(None, description="Pin a model version instead of the active one.")
    k: int | None = Field(None, ge=1, le=50, description="Chunks to retrieve; default from settings.")
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    priority: Literal["normal", "high"] = Field("normal", description="High-priority tasks are answered first.")
    stream: bool = Field(True, description="Publish token deltas on chat.tokens while generating.")


class ChatRequest(Event):
    type: Literal["chat.requests"] = "chat.requests"
    task_id: Identifier = Field(default_factory=new_id)
    conversation_id: Identifier = Field(default_factory=new_id)
    messages: list[ChatTurn] = Field(min_length=1)
    options: ChatOptions = Field(default_factory=ChatOptions)
    reference: str | None = Field(None, description="Known good answer, scored by the eval worker when present.")
    images: list[str] = Field(default_factory=list, max_length=4, description=(
        "`data:image/…;base64,` URLs of the images attached to the question, checked by the gateway (which fetches "
        "`https:` images itself); the agent searches the tenant's images and documents by them (with a CLIP "
        "checkpoint) and shows them to a remote vision model (RAGLOOP_LLM_VISION)."))
    callback_url: str | None = None
    principals: list[Principal] = Field(default_factory=list, max_length=100, description=(
        "Who is asking. A chunk with an access list is retrieved only for a request sharing an entry with it; "
        "empty sees the tenant's unrestricted chunks. The gateway sets it from the API key when auth is on."))

    @model_validator(mode="after")
    def _ends_with_user(self) -> ChatRequest:
        if self.messages[-1].role != "user":
            raise ValueError("messages: the last message must have role 'user' (the question to answer)")
        return self

    def key(self) -> str:
        return self.conversation_id

    def topic(self) -> str:
        return "chat.requests.high" if self.options.priority == "high" else "chat.requests"


class ChatToken(Event):
    type: Literal["chat.tokens"] = "chat.tokens"
    task_id: Identifier
    conversation_id: Identifier
    index: int
    delta: str

    def key(self) -> str:
        return self.conversation_id


class Citation(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    document_id: str
    chunk_id: str
    title: str = ""
    score: float
    text: str = Field(description="The cited chunk text, so a reader can check the claim without a lookup.")
    image_url: str | None = Field(None, description="For a cited image: where the gateway serves it (`/v1/images/{id}`, "
                                  "tenant-checked; `/thumbnail` appended for its thumbnail).")

    @model_serializer(mode="wrap")
    def _without_absent_image(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A text citation keeps the shape clients have always read: `image_url` only where there is an image."""
        dumped: dict[str, Any] = handler(self)
        if dumped.get("image_url") is None:
            dumped.pop("image_url", None)
        return dumped


class ChatResponse(Event):
    type: Literal["chat.responses"] = "chat.responses"
    task_id: Identifier
    conversation_id: Identifier
    question: str
    answer: str
    citations: list[Citation] = Field(default_factory=list)
    model_version: VersionId
    prompt: list[ChatTurn] = Field(default_factory=list, description="Exactly what the model saw; training reuses it.")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)
    reference: str | None = None

    def key(self) -> str:
        return self.conversation_id


class ImageGenerate(Event):
    """A text-to-image job; the bounds (models/image_generator.py) were checked when it was accepted."""

    type: Literal["images.generate"] = "images.generate"
    task_id: Identifier
    prompt: NonEmpty
    width: int | None = Field(None, ge=64, le=4096, description="Pixels; none: RAGLOOP_IMAGE_GEN_SIZE.")
    height: int | None = Field(None, ge=64, le=4096, description="Pixels; none: RAGLOOP_IMAGE_GEN_SIZE.")
    steps: int | None = Field(None, ge=1, le=1000, description="Denoising steps; none: RAGLOOP_IMAGE_GEN_STEPS.")
    seed: int | None = Field(None, ge=0, description="Makes the image reproducible on the same checkpoint and device.")

    def key(self) -> str:
        return self.task_id


# --- learning loop -----------------------------------------------------------------------------

class EvalResult(Event):
    type: Literal["eval.results"] = "eval.results"
    task_id: Identifier
    model_version: VersionId
    metrics: dict[str, float | None]

    @field_validator("metrics", mode="before")
    @classmethod
    def _unknown_is_none(cls, metrics: Any) -> Any:
        """A metric that came out NaN or infinite could not be computed: None says so in JSON."""
        if isinstance(metrics, dict):
            return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in metrics.items()}
        return metrics

    def key(self) -> str:
        return self.task_id


class FeedbackEvent(Event):
    type: Literal["feedback.events"] = "feedback.events"
    task_id: Identifier
    rating: Literal["up", "down"]
    correction: str | None = Field(None, min_length=1, max_length=4000)
    comment: str | None = Field(None, max_length=4000)

    def key(self) -> str:
        return self.task_id


class TrainRequest(Event):
    type: Literal["train.requests"] = "train.requests"
    model_family: FamilyId
    reason: str

    def key(self) -> str:
        return self.model_family


ModelState = Literal["candidate", "canary", "active", "retired", "rejected", "rolled_back"]


class ModelUpdated(Event):
    type: Literal["model.updated"] = "model.updated"
    model_family: FamilyId
    version: VersionId
    adapter_path: str | None
    state: ModelState
    metrics: dict[str, float] = Field(default_factory=dict)
    version_tenant: str | None = Field(None, description="Whom the version serves (None: shared); `tenant` is who caused the event.")
    canary_share: float | None = Field(None, ge=0.0, le=1.0)
    reason: str | None = Field(None, max_length=4000)

    def key(self) -> str:
        return self.model_family


EVENT_MODELS: dict[str, type[Event]] = {
    model.model_fields["type"].default: model
    for model in (DocumentIngest, DocumentDelete, DocumentProgress, DocumentIndexed, ChatRequest, ChatToken,
                  ChatResponse, ImageGenerate, EvalResult, FeedbackEvent, TrainRequest, ModelUpdated)
}


class DeadLetter(BaseModel):
    """What lands on `<topic>.dlq`: the original bytes plus why they could not be processed."""

    model_config = ConfigDict(extra="forbid")
    topic: str
    key: str | None
    consumer: str
    reason: str
    error_type: str
    attempts: int
    payload: str = Field(description="The original message, UTF-8 (or base64 when it was not text); on the `.dlq` topic only "
                                     "its first bytes when `payload_truncated` (the whole is in the dead_letters row).")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    failed_at: datetime = Field(default_factory=utcnow)
    payload_bytes: int | None = Field(None, description="Size of the original message in bytes.")
    payload_sha256: str | None = Field(None, description="sha256 of the original message bytes (hex).")
    payload_truncated: bool = Field(False, description="`payload` holds only the first bytes: replay from the dead_letters row.")
    dead_letter_id: str | None = Field(None, description="The dead_letters row: `ragloop dlq show ID` / `replay --ids ID`.")
