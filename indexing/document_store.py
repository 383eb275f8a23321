"""Where each document stands (queued, indexing, indexed, failed, deleted) and which of its ingest
events wait on or run in the large-document lane, so a small update never overtakes a big one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import delete, update
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import DocumentAccessRecord, DocumentRecord, LargeLaneRecord

LaneEntry = Literal["entered", "waiting", "done"]
LANE_TOMBSTONE_TTL = timedelta(days=7)  # Kafka's default retention: no redelivery is older


class DocumentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert_document(self, document_id: str, tenant: str, **values: Any) -> None:
        self.upsert_documents([(document_id, tenant, values)])

    def upsert_documents(self, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
        """``upsert_document`` for many (document id, tenant, values) in one transaction. A value
        named ``access`` (the document's access list) is kept beside the row (``access_of``)."""
        with self.db.session() as s:
            now = utcnow()
            for document_id, tenant, values in rows:
                row = s.get(DocumentRecord, document_id) or DocumentRecord(id=document_id, tenant=tenant)
                for name, value in values.items():
                    if name == "access":
                        s.merge(DocumentAccessRecord(document_id=document_id, access=sorted(set(value))))
                    else:
                        setattr(row, name, value)
                row.updated_at = now
                s.add(row)
            s.commit()

    def get_document(self, document_id: str) -> DocumentRecord | None:
        with self.db.session() as s:
            return s.get(DocumentRecord, document_id)

    def access_of(self, document_id: str) -> list[str]:
        """The document's access list: empty when the whole tenant may see it."""
        with self.db.session() as s:
            row = s.get(DocumentAccessRecord, document_id)
            return list(row.access) if row is not None else []

    def visible_document(self, document_id: str, tenant: str, principals: Sequence[str] | None) -> DocumentRecord | None:
        """The document if ``tenant`` owns it and, when it has an access list, one of ``principals``
        is on it (the rule search applies to its chunks); else None, as for a missing one.
        ``principals=None`` skips the access check (auth off: nobody's principals are known)."""
        row = self.get_document(document_id)
        if row is None or row.tenant != tenant:
            return None
        if principals is not None:
            access = self.access_of(document_id)
            if access and not set(access) & set(principals):
                return None
        return row

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
