"""The processed-event ledger: which events each consumer group has already applied.

The delivery middleware (`streams/consumer.py`) reads it before handling a batch and writes it once
the batch's effects are durable, so a redelivered event is skipped instead of applied twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import ProcessedEvent


class EventLedger:
    def __init__(self, db: Database) -> None:
        self.db = db

    def already_processed(self, consumer: str, event_id: str) -> bool:
        with self.db.session() as s:
            return s.get(ProcessedEvent, (consumer, event_id)) is not None

    def processed_among(self, consumer: str, event_ids: Iterable[str]) -> set[str]:
        """Which of these events the consumer group has already handled, in one query."""
        ids = list(event_ids)
        if not ids:
            return set()
        with self.db.session() as s:
            rows = s.exec(select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == consumer,
                                                                col(ProcessedEvent.event_id).in_(ids)))
            return set(rows.all())

    def mark_processed_many(self, consumer: str, event_ids: Iterable[str]) -> None:
        """Record a batch's events in one statement. Ids already recorded (a redelivery racing
        another worker) are skipped by the database, not by a read-then-write that could race."""
        inserts: dict[str, Any] = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}
        dialect = self.db.engine.dialect.name
        if dialect not in inserts:
            raise NotImplementedError(f"the ledger supports SQLite and PostgreSQL, not {dialect}")
        insert, now = inserts[dialect], utcnow()
        # Sorted, so two workers recording overlapping batches lock rows in the same order (no deadlock).
        rows = [{"consumer": consumer, "event_id": event_id, "processed_at": now} for event_id in sorted(set(event_ids))]
        with self.db.session() as s:
            for start in range(0, len(rows), 300):  # 3 parameters a row: well under SQLite's 999 per statement
                s.execute(insert(ProcessedEvent).values(rows[start:start + 300]).on_conflict_do_nothing())
            s.commit()
