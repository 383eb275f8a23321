"""Dead letters as something operators work with: recorded when a consumer gives up, listed,
read, and replayed onto their original topic once the cause is fixed.

Every letter goes two places: `<topic>.dlq` (for Kafka-native tools) and the `dead_letters` table,
which the CLI (`ragloop dlq`) and `GET /v1/dead-letters` read the same way on either broker. A replay
publishes the original payload again with the original key and a fresh `event_id` (the consumer's
ledger already holds the old one), puts the task or document it concerns back to `queued`, and
records who replayed it and when.

Sizes: the topic copy must always fit a message, whatever the original's size, or the letter
could never be sent. So `<topic>.dlq` carries at most `DLQ_BODY_BYTES` of the payload with its
size, sha256 and the row id (`dead_letter_id`); the row keeps the whole payload, which is bounded
because it arrived as one broker message. Replay always reads the row, never the topic copy.

A letter whose payload names a task or a document (even a schema-invalid one, if its `task_id`
or `document_id` and `tenant` are readable) leaves it `failed` with the reason (`fail_subject`),
so nothing stays `queued` behind a message that will never be handled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from indexing.document_store import DocumentStore
from schemas.database import Database
from schemas.events import DeadLetter, as_utc, principals_fingerprint, utcnow
from schemas.tables import DeadLetterRecord
from streams.task_store import TaskStore

log = structlog.get_logger(__name__)
CHAT_TOPICS = ("chat.requests", "chat.requests.high")
DLQ_BODY_BYTES = 64 * 1024  # of the payload on `<topic>.dlq`; the row keeps it all
DLQ_TEXT_CHARS = 4000  # of the reason and key on `<topic>.dlq`
DOCUMENT_TOPICS = ("docs.ingest", "docs.ingest.large", "docs.delete")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class DeadLetterStore:
    """The `dead_letters` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, letter: DeadLetter) -> DeadLetterRecord:
        """Keep a letter once per (consumer, message): a redelivered dead-lettering adds nothing."""
        payload = _payload_json(letter)
        event_id = payload.get("event_id") if isinstance(payload.get("event_id"), str) else None
        identity = event_id or hashlib.sha256(letter.payload.encode()).hexdigest()[:24]
        tenant = payload.get("tenant", "default") if payload else None  # an event without one is the default tenant's
        principals = payload.get("principals")
        row = DeadLetterRecord(
            id=hashlib.sha256(f"{letter.consumer}\n{letter.topic}\n{identity}".encode()).hexdigest()[:20],
            topic=letter.topic, key=letter.key, consumer=letter.consumer,
            tenant=tenant if isinstance(tenant, str) else None,
            asked_as=principals_fingerprint(p for p in principals if isinstance(p, str)) if isinstance(principals, list) else "",
            event_id=event_id, reason=letter.reason, error_type=letter.error_type, attempts=letter.attempts,
            payload=letter.payload, payload_encoding=letter.payload_encoding, failed_at=letter.failed_at)
        with self.db.session() as s:
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
        return row

    def list(self, *, topic: str | None = None, since: datetime | None = None, tenant: str | None = None,
             asked_as: str | None = None, ids: Sequence[str] | None = None, limit: int = 100) -> list[DeadLetterRecord]:
        """Newest first. `asked_as` keeps letters either unrestricted or asked as those principals."""
        query = select(DeadLetterRecord)
        if topic is not None:
            query = query.where(DeadLetterRecord.topic == topic)
        if since is not None:
            query = query.where(col(DeadLetterRecord.failed_at) >= since)
        if tenant is not None:
            query = query.where(DeadLetterRecord.tenant == tenant)
        if asked_as is not None:
            query = query.where(col(DeadLetterRecord.asked_as).in_(("", asked_as)))
        if ids is not None:
            query = query.where(col(DeadLetterRecord.id).in_(list(ids)))
        query = query.order_by(col(DeadLetterRecord.failed_at).desc(), col(DeadLetterRecord.id)).limit(limit)
        with self.db.session() as s:
            return list(s.exec(query))

    def get(self, letter_id: str) -> DeadLetterRecord | None:
        with self.db.session() as s:
            return s.get(DeadLetterRecord, letter_id)

    def mark_replayed(self, letter_id: str, by: str) -> None:
        with self.db.session() as s:
            s.execute(update(DeadLetterRecord).where(col(DeadLetterRecord.id) == letter_id)
                      .values(replays=DeadLetterRecord.replays + 1, replayed_at=utcnow(), replayed_by=by))
            s.commit()


def parse_since(text: str) -> datetime:
    """`30m`, `2h`, `1d` (that long ago) or an ISO time (UTC unless it says otherwise)."""
    match = DURATION.match(text.strip())
    if match:
        return utcnow() - timedelta(**{UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"since {text!r}: give a duration like 30m, 2h, 1d or an ISO time like 2026-11-30T12:00") from None
    return as_utc(moment)


def replay_message(row: DeadLetterRecord) -> bytes:
    """The original bytes, with a fresh `event_id` when the payload has one (else exactly as received)."""
    raw = base64.b64decode(row.payload) if row.payload_encoding == "base64" else row.payload.encode()
    if row.event_id is None:
        return raw
    payload = json.loads(raw)
    payload["event_id"] = f"{row.event_id}.replay{row.replays + 1}"[:200]
    return json.dumps(payload).encode()


def letter_of(value: bytes, *, topic: str, key: str | None, consumer: str, reason: str, error_type: str, attempts: int) -> DeadLetter:
    """The whole letter, as the row keeps it. Text columns of PostgreSQL refuse NUL, so a payload
    holding one is kept as base64 and a NUL in the key or reason is written as `\\x00`: a letter
    that cannot be stored would be redelivered forever."""
    try:
        payload, encoding = value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = "", "base64"
    if encoding == "base64" or "\x00" in payload:
        payload, encoding = base64.b64encode(value).decode(), "base64"
    key, reason = (_without_nul(key) if key is not None else None), _without_nul(reason)
    return DeadLetter(topic=topic, key=key, consumer=consumer, reason=reason, error_type=error_type, attempts=attempts,
                      payload=payload, payload_encoding=encoding,
                      payload_bytes=len(value), payload_sha256=hashlib.sha256(value).hexdigest())


def _without_nul(text: str) -> str:
    return text.replace("\x00", "\\x00")


def bounded(letter: DeadLetter, row_id: str) -> DeadLetter:
    """The copy for `<topic>.dlq`: at most `DLQ_BODY_BYTES` of payload, so it always fits a message."""
    body = letter.payload.encode()  # utf-8 text, or base64 (ASCII)
    cut = len(body) > DLQ_BODY_BYTES
    payload = body[:DLQ_BODY_BYTES].decode("utf-8", errors="ignore") if cut else letter.payload
    if cut and letter.payload_encoding == "base64":
        payload = payload[:len(payload) // 4 * 4]
    key = letter.key[:DLQ_TEXT_CHARS] if letter.key is not None else None
    return letter.model_copy(update={"payload": payload, "payload_truncated": cut, "dead_letter_id": row_id, "key": key,
                                     "reason": letter.reason[:DLQ_TEXT_CHARS]})


def fail_subject(db: Database, topic: str, payload_text: str, reason: str) -> None:
    """The inverse of `revive`, for a letter no handler saw (schema-invalid): the task or the
    document it names is `failed` with the reason, if it exists in that tenant and is still pending."""
    payload = _payload_json_text(payload_text)
    tenant = payload.get("tenant", "default")
    if topic in CHAT_TOPICS and isinstance(payload.get("task_id"), str):
        tasks = TaskStore(db)
        task = tasks.get_task(payload["task_id"])
        if task is not None and task.tenant == tenant:
            tasks.transition_task(task.id, from_states=("queued", "running"), to="failed", error=reason)
    elif topic in DOCUMENT_TOPICS and isinstance(payload.get("document_id"), str):
        documents = DocumentStore(db)
        document = documents.get_document(payload["document_id"])
        if document is not None and document.tenant == tenant and document.status in ("queued", "indexing"):
            documents.upsert_document(document.id, document.tenant, status="failed", error=reason)


def revive(db: Database, row: DeadLetterRecord) -> None:
    """Put what the letter concerns back to `queued`, so the replayed event is worked on again:
    a dead-lettered chat request left its task `failed`, a document its row `failed`."""
    payload = _payload_json_text(row.payload) if row.payload_encoding == "utf-8" else {}
    if row.topic in CHAT_TOPICS and isinstance(payload.get("task_id"), str):
        TaskStore(db).transition_task(payload["task_id"], from_states=("failed",), to="queued", error=None, finished_at=None)
    elif row.topic in DOCUMENT_TOPICS and isinstance(payload.get("document_id"), str) and isinstance(payload.get("tenant", "default"), str):
        documents = DocumentStore(db)
        document = documents.get_document(payload["document_id"])
        if document is not None and document.status == "failed":
            documents.upsert_document(payload["document_id"], document.tenant, status="queued", error=None)


def _payload_json(letter: DeadLetter) -> dict[str, Any]:
    return _payload_json_text(letter.payload) if letter.payload_encoding == "utf-8" else {}


def _payload_json_text(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

