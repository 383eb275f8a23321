"""Where each document stands (queued, indexing, indexed, failed, deleted) and which of its ingest
events wait on or run in the large-document lane, so a small update never overtakes a big one."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import case, delete, func, update
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import DocumentRecord, LargeLaneRecord

LaneEntry = Literal["entered", "waiting", "done"]
LANE_TOMBSTONE_TTL = timedelta(days=7)  # Kafka's default retention: no redelivery is older


class DocumentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert_document(self, document_id: str, tenant: str, **values: Any) -> None:
        self.upsert_documents([(document_id, tenant, values)])

    def upsert_documents(self, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
        """``upsert_document`` for many (document id, tenant, values) in one transaction."""
        with self.db.session() as s:
            now = utcnow()
            for document_id, tenant, values in rows:
                row = s.get(DocumentRecord, document_id) or DocumentRecord(id=document_id, tenant=tenant)
                for name, value in values.items():
                    setattr(row, name, value)
                row.updated_at = now
                s.add(row)
            s.commit()

    def get_document(self, document_id: str) -> DocumentRecord | None:
        with self.db.session() as s:
            return s.get(DocumentRecord, document_id)

    def backlog(self, tenant: str) -> tuple[int, int]:
        """Documents queued or indexing, overall and of `tenant`, in one query (checked on every submission)."""
        with self.db.session() as s:
            mine = func.coalesce(func.sum(case((col(DocumentRecord.tenant) == tenant, 1), else_=0)), 0)
            statement = select(func.count(), mine).select_from(DocumentRecord).where(
                col(DocumentRecord.status).in_(("queued", "indexing")))
            total, of_tenant = s.exec(statement).one()
            return int(total), int(of_tenant)

    # --- large-document lane --------------------------------------------------------------------
    def enter_large_lane(self, document_id: str, event_id: str) -> LaneEntry:
        """Record the move of one event: `entered` the first time; for a redelivered move,
        `waiting` while the lane has not finished it (publish it again: the lane de-duplicates)
        or `done` once it has (nothing to do: publishing or re-queueing would undo its result)."""
        if self.db.insert_once(LargeLaneRecord(document_id=document_id, event_id=event_id)):
            return "entered"
        with self.db.session() as s:
            row = s.get(LargeLaneRecord, (document_id, event_id))
            return "done" if row is not None and row.left_at is not None else "waiting"

    def leave_large_lane(self, document_id: str, event_id: str) -> None:
        """Mark the event done on the lane; tombstones older than `LANE_TOMBSTONE_TTL` go at the
        same time (a move is redelivered within a consumer session, long before that)."""
        now = utcnow()
        with self.db.session() as s:
            s.execute(update(LargeLaneRecord).where(col(LargeLaneRecord.document_id) == document_id,
                                                    col(LargeLaneRecord.event_id) == event_id,
                                                    col(LargeLaneRecord.left_at).is_(None)).values(left_at=now))
            s.execute(delete(LargeLaneRecord).where(col(LargeLaneRecord.left_at) < now - LANE_TOMBSTONE_TTL))
            s.commit()

    def on_large_lane(self, document_ids: Iterable[str]) -> set[str]:
        """Which of these documents have events waiting on or running in the large lane."""
        ids = list(document_ids)
        if not ids:
            return set()
        with self.db.session() as s:
            rows = s.exec(select(LargeLaneRecord.document_id).where(col(LargeLaneRecord.document_id).in_(ids),
                                                                    col(LargeLaneRecord.left_at).is_(None)))
            return set(rows.all())
