"""Durable state shared by workers and the gateway (SQLite embedded, PostgreSQL in cluster mode).

Events say what happened; these rows say where things stand now. Every write that follows an event
is idempotent: rows are keyed by the event's natural id and transitions are compare-and-set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from schemas.events import as_utc, principals_fingerprint, utcnow
from schemas.task_result import TaskOutcome, TaskOutcomeColumn

TERMINAL_TASK_STATES = ("succeeded", "failed", "cancelled")


class TaskRecord(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("tenant", "idempotency_key", name="uq_tasks_tenant_idempotency_key"),)
    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    conversation_id: str = Field(index=True)
    status: str = Field(default="queued", index=True)
    priority: str = Field(default="normal", description="normal or high; high is served first by agents.")
    idempotency_key: str | None = Field(default=None, description="A repeat with the same key returns this task.")
    request: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    result: TaskOutcome | None = Field(default=None, sa_column=Column(TaskOutcomeColumn), description="Set once it succeeded.")
    error: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    model_version: str | None = None
    lease_owner: str | None = Field(default=None, description="The agent process working on it.")
    lease_expires_at: datetime | None = Field(default=None, index=True, description="Visibility timeout: past it, another worker may take over.")
    callback_url: str | None = Field(default=None, description="Where the finished task is sent: see CallbackDeliveryRecord.")
    # A column of databases created before `callback_deliveries`: NOT NULL there, so it stays declared
    # for their inserts to succeed. Nothing reads it; drop it with the first migration.
    callback_attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def lease_lapsed(self) -> bool:
        """Running, but its agent stopped renewing the lease (it likely died): about to be taken over."""
        expires = self.lease_expires_at
        if self.status != "running" or expires is None:
            return False
        return as_utc(expires) < utcnow()

    def asked_as(self) -> str:
        """Fingerprint of the principals the task was asked as ('' for none): who may see its answer."""
        return principals_fingerprint(self.request.get("principals", []))


class CallbackDeliveryRecord(SQLModel, table=True):
    """The delivery of a finished task to its `callback_url`, created with the task (`pending`) and
    moved `delivering` → `delivered` | `failed` by one sender at a time. The sender's lease lives
    here, apart from the task's: an agent's lease and a sender's can never overwrite each other."""

    __tablename__ = "callback_deliveries"
    task_id: str = Field(primary_key=True)
    status: str = Field(default="pending", index=True, description="pending, delivering, delivered or failed.")
    attempts: int = 0
    lease_owner: str | None = Field(default=None, description="The callback sender delivering it.")
    lease_expires_at: datetime | None = Field(default=None, description="Past it, another sender may take over.")


class DocumentRecord(SQLModel, table=True):
    __tablename__ = "documents"
    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    title: str = ""
    status: str = Field(default="queued", index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    chunks: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # A delete wins over every ingest accepted before it, whichever topic or lane carried it
    # (indexing/document_store.py): when the newest delete and the indexed ingest were accepted,
    # and a counter that is odd while a delete removes chunks.
    deleted_at: datetime | None = None
    indexed_at: datetime | None = None
    delete_seq: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class DocumentAccessRecord(SQLModel, table=True):
    """Who may see a document through the API: the access list it was ingested with (empty: the
    whole tenant). A table of its own rather than a column of `documents`, so `create_all` adds
    it to a database made by an earlier version, with no migration; a document without a row
    (ingested before this table existed) is visible to its whole tenant, as it was then."""

    __tablename__ = "document_access"
    document_id: str = Field(primary_key=True)
    access: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class LargeLaneRecord(SQLModel, table=True):
    """An ingest event of a document moved to the large-document lane (`docs.ingest.large`).
    While a document has one that has not left, its later events follow it there, so a small
    update is never overtaken by the big version it replaces. Keyed by event, so a redelivered
    move is recorded once; leaving keeps the row (`left_at`) so a move redelivered after the
    lane finished cannot put the document back on the lane."""

    __tablename__ = "large_lane"
    document_id: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    left_at: datetime | None = None


class FeedbackRecord(SQLModel, table=True):
    __tablename__ = "feedback"
    id: str = Field(primary_key=True, description="The feedback event's event_id.")
    task_id: str = Field(index=True)
    tenant: str = Field(index=True)
    rating: str
    correction: str | None = Field(default=None, sa_column=Column(Text))
    comment: str | None = Field(default=None, sa_column=Column(Text))
    train_request_id: str | None = Field(default=None, index=True, description="Set once a training run has claimed it.")
    created_at: datetime = Field(default_factory=utcnow)


class EvalRecord(SQLModel, table=True):
    __tablename__ = "eval_results"
    task_id: str = Field(primary_key=True)
    model_version: str = Field(index=True)
    tenant: str | None = Field(default=None, index=True, description="Whose answer it scored: canary windows compare within a tenant.")
    metrics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


# candidate: trained, not gated yet; canary: serves `canary_share` of its tenant's conversations;
# active: serves the rest (one per family and tenant; tenant None is the shared line, where the base
# model lives); retired: replaced by a promotion; rejected: failed the gate; rolled_back: taken back
# (by the canary judge or a person) — never served again under that id.
MODEL_STATES = ("candidate", "canary", "active", "retired", "rejected", "rolled_back")


class ModelVersionRecord(SQLModel, table=True):
    __tablename__ = "model_versions"
    version: str = Field(primary_key=True, description="`<family>@base` or `<family>@lora-<sha256[:12] of the weights>`.")
    family: str = Field(index=True)
    tenant: str | None = Field(default=None, index=True, description="The tenant whose feedback trained it and whom it serves; "
                               "None: shared (the base model, or an adapter an operator marked shared).")
    state: str = Field(index=True, description="One of MODEL_STATES; one active per family and tenant.")
    adapter_path: str | None = None  # legacy: a path on the trainer's disk; new versions use artifact_uri
    artifact_uri: str | None = Field(default=None, description="Where the adapter's files are: file://… or s3://… (models/artifacts.py).")
    sha256: str | None = Field(default=None, description="Digest of the adapter's files; its first 12 hex digits are in the id.")
    recipe: str | None = Field(default=None, description="The recipe that trained it (lora-peft, lora-deepspeed).")
    canary_share: float | None = Field(default=None, description="Share of the tenant's conversations it serves while a canary.")
    parent: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime | None = Field(default=None, description="Last state change.")


class ModelDecisionRecord(SQLModel, table=True):
    """Every state change of a model version, with who made it, why and the numbers it was made on:
    the audit trail of promotions and rollbacks, and the canary periods the report shades."""

    __tablename__ = "model_decisions"
    id: int | None = Field(default=None, primary_key=True)
    family: str = Field(index=True)
    tenant: str | None = Field(default=None, index=True)
    version: str = Field(index=True)
    action: str = Field(description="candidate, canary, promote, reject, rollback or share.")
    actor: str = Field(description="auto:gate, auto:canary, api:<key id>, cli or operator.")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    numbers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow, index=True)


class TrainingDecisionRecord(SQLModel, table=True):
    """One evaluation of the feedback policy for a tenant, with the inputs it decided on, whether or not
    it started a run: `GET /v1/training-runs` shows why a model did (or did not) retrain."""

    __tablename__ = "training_decisions"
    id: str = Field(primary_key=True, description="The feedback event that made the policy look.")
    tenant: str = Field(index=True)
    family: str
    train: bool
    reason: str = Field(sa_column=Column(Text, nullable=False))
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    train_request_id: str | None = None
    at: datetime = Field(default_factory=utcnow, index=True)


class TrainingRunRecord(SQLModel, table=True):
    """One training run of a tenant's adapter, from request to outcome (a failed run leaves the active version untouched)."""

    __tablename__ = "training_runs"
    id: str = Field(primary_key=True, description="The train request's event id: one run per request.")
    tenant: str = Field(index=True)
    family: str
    recipe: str
    state: str = Field(index=True, description="running, failed, rejected (the gate said no) or gated (a canary now).")
    version: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None


class VersionWindowRecord(SQLModel, table=True):
    """The latest window summary of one metric for one version and tenant (the eval worker keeps it)."""

    __tablename__ = "version_windows"
    version: str = Field(primary_key=True)
    tenant: str = Field(primary_key=True, description="'*' for all tenants together.")
    metric: str = Field(primary_key=True)
    count: int
    mean: float
    ci_low: float
    ci_high: float
    updated_at: datetime = Field(default_factory=utcnow)


class ProcessedEvent(SQLModel, table=True):
    """Idempotency ledger: an event id is recorded once its effect is durable, per consumer group."""

    __tablename__ = "processed_events"
    consumer: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    processed_at: datetime = Field(default_factory=utcnow)


class DeadLetterRecord(SQLModel, table=True):
    """A message a consumer gave up on, kept where operators can list, read and replay it.

    The same letter also goes to `<topic>.dlq` for Kafka-native tools; this row is what the CLI and
    `GET /v1/dead-letters` read, on either broker. Keyed by consumer and message, so a dead-lettering
    that is itself redelivered records the letter once.
    """

    __tablename__ = "dead_letters"
    id: str = Field(primary_key=True)
    topic: str = Field(index=True)
    key: str | None = None
    consumer: str
    tenant: str | None = Field(default=None, index=True, description="The payload's tenant; None when it is not JSON.")
    asked_as: str = Field(default="", description="Fingerprint of the payload's principals: who may read it over HTTP.")
    event_id: str | None = Field(default=None, description="The payload's event_id, when it has one.")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    error_type: str
    attempts: int
    payload: str = Field(sa_column=Column(Text, nullable=False))
    payload_encoding: str = "utf-8"
    failed_at: datetime = Field(default_factory=utcnow, index=True)
    replays: int = Field(default=0, description="How many times it was published again.")
    replayed_at: datetime | None = None
    replayed_by: str | None = Field(default=None, description="Who replayed it last (CLI user or API key's tenant).")


class TaskAttemptRecord(SQLModel, table=True):
    """One try at a chat task by one agent: when it started and how it ended. A task's own
    `started_at` is its first attempt's; these keep every attempt's, so a takeover after a dead
    agent shows both tries instead of overwriting the first."""

    __tablename__ = "task_attempts"
    task_id: str = Field(primary_key=True)
    attempt: int = Field(primary_key=True)
    agent: str = Field(description="The agent process (host:pid:nonce) that claimed it.")
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    outcome: str = Field(default="running", description="running, succeeded, failed, stopped, error or lease_expired.")


class OutboxRecord(SQLModel, table=True):
    """An event owed to the broker, written in the same transaction as the row it announces (a task,
    a document), so accepted work is never left without its event: published right after the commit,
    or by the relay (`streams/outbox_relay.py`) when that publish failed or the process died first.
    `scope` is the topic prefix of the deployment that wrote it (deployments may share a database).
    Sent rows are kept a while: after a restart the embedded broker, which kept nothing, is fed the
    events of work still pending from here."""

    __tablename__ = "outbox"
    seq: int | None = Field(default=None, primary_key=True, description="Publication order.")
    scope: str = Field(default="", index=True)
    event_id: str = Field(index=True, description="Stable across republications: consumers de-duplicate by it.")
    topic: str
    key: str | None = None
    type: str
    payload: str = Field(sa_column=Column(Text, nullable=False))
    aggregate: str = Field(description="What the event announces: task or document.")
    aggregate_id: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = Field(default=None, index=True)
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))


class ImageGenerationRecord(SQLModel, table=True):
    """A text-to-image job (`images.generate`) and where it stands: queued, then done with the image's
    URL in the one image store (`/v1/images/img-…`, indexing/images/store.py), or failed with why. Read back only by its tenant."""

    __tablename__ = "image_generations"
    id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    width: int
    height: int
    steps: int
    seed: int | None = None
    status: str = Field(default="queued", index=True, description="queued, done or failed.")
    image_uri: str | None = None
    document_id: str | None = Field(default=None, description="The document that makes the image findable by its prompt.")
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
