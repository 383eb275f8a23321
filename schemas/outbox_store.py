"""The transactional outbox's rows: events owed to the broker, written beside the row they announce.

A store that accepts work (`TaskStore.create_task`, `DocumentStore.upsert_document`) adds an
`outbox_entry` to its own transaction, so the row and its event are durable together or not at all.
Publishing (right after the commit, or later by the relay) lives in `streams/outbox_relay.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, func, update
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import Event, utcnow
from schemas.tables import DocumentRecord, OutboxRecord, TaskRecord

Aggregate = Literal["task", "document", "feedback", "model", "image"]
PENDING_DOCUMENT = ("queued", "indexing")


def outbox_entry(event: Event, *, aggregate: Aggregate, aggregate_id: str, scope: str = "") -> OutboxRecord:
    """The row owing `event`, serialised once: what is published is exactly what was sized and stored."""
    return OutboxRecord(scope=scope, event_id=event.event_id, topic=event.topic(), key=event.key(), type=event.type,
                        payload=event.model_dump_json(), aggregate=aggregate, aggregate_id=aggregate_id)


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, entries: Sequence[OutboxRecord]) -> None:
        """Entries whose event is the accepted work itself (feedback has no row of its own)."""
        with self.db.session() as s:
            s.add_all(entries)
            s.commit()

    def unsent(self, scope: str, *, created_before: datetime | None = None, limit: int = 100) -> list[OutboxRecord]:
        """Entries not yet published, oldest first (the order they were accepted in)."""
        with self.db.session() as s:
            statement = select(OutboxRecord).where(OutboxRecord.scope == scope, col(OutboxRecord.sent_at).is_(None))
            if created_before is not None:
                statement = statement.where(col(OutboxRecord.created_at) < created_before)
            return list(s.exec(statement.order_by(col(OutboxRecord.seq)).limit(limit)).all())

    def mark_sent(self, seqs: Sequence[int]) -> None:
        if seqs:
            self.db.changed(update(OutboxRecord).where(col(OutboxRecord.seq).in_(list(seqs)), col(OutboxRecord.sent_at).is_(None))
                            .values(sent_at=utcnow()))

    def mark_failed(self, seq: int, error: str) -> None:
        self.db.changed(update(OutboxRecord).where(col(OutboxRecord.seq) == seq)
                        .values(attempts=OutboxRecord.attempts + 1, error=error[:2000]))

    def prune(self, scope: str, sent_before: datetime) -> None:
        """Forget entries published before `sent_before`."""
        self.db.changed(delete(OutboxRecord).where(col(OutboxRecord.scope) == scope, col(OutboxRecord.sent_at) < sent_before))

    # --- embedded broker: what a restart lost ----------------------------------------------------
    def queued_tasks(self) -> list[TaskRecord]:
        """Tasks nobody has claimed yet, oldest first (their request is in the row itself)."""
        with self.db.session() as s:
            return list(s.exec(select(TaskRecord).where(TaskRecord.status == "queued").order_by(col(TaskRecord.created_at))).all())

    def pending_documents(self, scope: str) -> list[OutboxRecord]:
        """Each document's latest owed event whose effect has not happened: an ingest of a document
        still queued or indexing, or a delete of one not yet deleted; in the order they were accepted."""
        with self.db.session() as s:
            latest = (select(func.max(OutboxRecord.seq)).where(OutboxRecord.scope == scope, OutboxRecord.aggregate == "document")
                      .group_by(col(OutboxRecord.aggregate_id)))
            statement = (select(OutboxRecord, DocumentRecord.status)
                         .join(DocumentRecord, col(DocumentRecord.id) == col(OutboxRecord.aggregate_id))
                         .where(col(OutboxRecord.seq).in_(latest)).order_by(col(OutboxRecord.seq)))
            rows = s.exec(statement).all()
        return [entry for entry, status in rows
                if (entry.type == "docs.delete" and status != "deleted") or (entry.type != "docs.delete" and status in PENDING_DOCUMENT)]
