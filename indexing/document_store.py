"""Where each document stands (queued, indexing, indexed, failed, deleted), which of its ingest
events wait on or run in the large-document lane, so a small update never overtakes a big one,
and the delete tombstone that makes a delete win over every ingest accepted before it.

Deletes and ingests travel on different topics (`docs.delete`, `docs.ingest`, `docs.ingest.large`),
so nothing orders them in the broker. They are ordered by when the gateway accepted them (each
event's `occurred_at`) through three columns of the document row:

- `deleted_at`: acceptance time of the newest delete applied; an ingest accepted at or before it
  has lost and must leave nothing in the index.
- `indexed_at`: acceptance time of the ingest whose chunks are in the index; a delete accepted
  before it is superseded and removes nothing.
- `delete_seq`: a sequence lock, odd while a delete removes chunks. An ingest reads it before it
  writes and marks itself indexed only if it has not moved (`finish_indexing`): a delete that ran
  in between may have removed some of what it wrote, so it either lost (clean up) or indexes again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, delete, func, update
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import as_utc, utcnow
from schemas.tables import DocumentAccessRecord, DocumentRecord, LargeLaneRecord, OutboxRecord

LaneEntry = Literal["entered", "waiting", "done"]
IndexOutcome = Literal["indexed", "deleted", "interrupted"]


@dataclass(frozen=True)
class DeleteMark:
    """What an ingest reads before it writes: the delete sequence and the newest delete's time."""

    seq: int = 0
    deleted_at: datetime | None = None

    def beats(self, accepted_at: datetime) -> bool:
        """Whether a delete accepted at or after `accepted_at` has been applied."""
        return self.deleted_at is not None and as_utc(self.deleted_at) >= as_utc(accepted_at)


@dataclass(frozen=True)
class Indexed:
    """One ingest's final write: it counts only if no delete ran since `seen` was read."""

    document_id: str
    accepted_at: datetime
    seen: DeleteMark
    values: dict[str, Any]
LANE_TOMBSTONE_TTL = timedelta(days=7)  # Kafka's default retention: no redelivery is older


class DocumentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert_document(self, document_id: str, tenant: str, *, outbox: Sequence[OutboxRecord] = (), **values: Any) -> None:
        self.upsert_documents([(document_id, tenant, values)], outbox=outbox)

    def upsert_documents(self, rows: list[tuple[str, str, dict[str, Any]]], *, outbox: Sequence[OutboxRecord] = ()) -> None:
        """``upsert_document`` for many (document id, tenant, values) in one transaction, with the
        `outbox` entries (the events that announce them: `schemas/outbox_store.py`). A value
        named ``access`` (the document's access list) is kept beside the row (``access_of``)."""
        with self.db.session() as s:
            s.add_all(outbox)
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

    # --- deletes against ingests (see the module docstring) -------------------------------------
    def delete_marks(self, document_ids: Iterable[str]) -> dict[str, DeleteMark]:
        ids = list(document_ids)
        with self.db.session() as s:
            rows = s.exec(select(DocumentRecord).where(col(DocumentRecord.id).in_(ids))).all() if ids else []
            marks = {r.id: DeleteMark(r.delete_seq or 0, r.deleted_at) for r in rows}
        return {i: marks.get(i, DeleteMark()) for i in ids}

    def begin_delete(self, document_id: str, tenant: str, accepted_at: datetime) -> bool:
        """Record the tombstone and make the sequence odd (a redelivered begin keeps it odd).
        True when the delete must remove chunks: no ingest accepted after it is indexed."""
        with self.db.session() as s:
            row = s.exec(select(DocumentRecord).where(DocumentRecord.id == document_id).with_for_update()).first() \
                or DocumentRecord(id=document_id, tenant=tenant)
            if row.deleted_at is None or as_utc(row.deleted_at) < as_utc(accepted_at):
                row.deleted_at = accepted_at
            seq = row.delete_seq or 0
            row.delete_seq = seq + 1 if seq % 2 == 0 else seq
            row.updated_at = utcnow()
            s.add(row)
            s.commit()
            return row.indexed_at is None or as_utc(row.indexed_at) < as_utc(accepted_at)

    def end_delete(self, document_id: str, accepted_at: datetime) -> None:
        """Make the sequence even again; the document reads `deleted` unless a later ingest is indexed."""
        with self.db.session() as s:
            row = s.exec(select(DocumentRecord).where(DocumentRecord.id == document_id).with_for_update()).first()
            if row is None:
                return
            seq = row.delete_seq or 0
            row.delete_seq = seq + 1 if seq % 2 == 1 else seq
            if row.indexed_at is None or as_utc(row.indexed_at) < as_utc(accepted_at):
                row.status, row.chunks, row.error, row.indexed_at = "deleted", 0, None, None
            row.updated_at = utcnow()
            s.add(row)
            s.commit()

    def finish_indexing(self, writes: list[Indexed]) -> list[IndexOutcome]:
        """Mark each document indexed with its values if no delete ran since its mark was read
        (compare-and-set on `delete_seq`). Otherwise `deleted` when a delete accepted at or after
        the ingest was applied (it lost: remove what it wrote) or `interrupted` (an older delete
        ran meanwhile and may have removed some of its chunks: index it again)."""
        outcomes: list[IndexOutcome] = []
        with self.db.session() as s:
            for write in writes:
                row = s.exec(select(DocumentRecord).where(DocumentRecord.id == write.document_id).with_for_update()).first()
                mark = DeleteMark(row.delete_seq or 0, row.deleted_at) if row is not None else DeleteMark()
                if mark.beats(write.accepted_at):
                    if row is not None:
                        _settle_lost(row, ("indexing",))
                        s.add(row)
                    outcomes.append("deleted")
                elif row is None or mark.seq != write.seen.seq or mark.seq % 2 == 1:
                    outcomes.append("interrupted")
                else:
                    for name, value in write.values.items():
                        setattr(row, name, value)
                    row.status, row.indexed_at, row.updated_at = "indexed", write.accepted_at, utcnow()
                    s.add(row)
                    outcomes.append("indexed")
            s.commit()
        return outcomes

    def skip_lost(self, document_ids: Iterable[str]) -> set[str]:
        """For ingests that lost to a delete and are skipped: a `queued` or `indexing` an earlier
        attempt of theirs left after the delete ended (it marked the row, then failed or was
        interrupted before `finish_indexing`) reads `deleted` again; nothing else would settle it.
        Returns those documents: that attempt may have written chunks, which the caller removes."""
        ids = sorted(set(document_ids))
        settled: set[str] = set()
        with self.db.session() as s:
            rows = s.exec(select(DocumentRecord).where(col(DocumentRecord.id).in_(ids)).order_by(col(DocumentRecord.id)).with_for_update())
            for row in rows if ids else []:
                if _settle_lost(row, ("queued", "indexing")):
                    s.add(row)
                    settled.add(row.id)
            s.commit()
        return settled

    def access_of(self, document_id: str) -> list[str]:
        """The document's access list: empty when the whole tenant may see it."""
        with self.db.session() as s:
            row = s.get(DocumentAccessRecord, document_id)
            return list(row.access) if row is not None else []

    def hidden_from(self, document_id: str, tenant: str, principals: Sequence[str] | None) -> bool:
        """Whether a document with this id exists that the caller may not see: another tenant's, or one
        whose access list names none of ``principals`` (the rule search applies to its chunks). Such a
        document must look missing (404) or merely taken (409). ``principals=None`` skips the access
        check (auth off: nobody's principals are known)."""
        row = self.get_document(document_id)
        if row is None:
            return False
        if row.tenant != tenant:
            return True
        access = self.access_of(document_id) if principals is not None else []
        return bool(access) and not set(access) & set(principals or ())

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


def _settle_lost(row: DocumentRecord, pending: tuple[str, ...]) -> bool:
    """A row an ingest that lost to a delete marked `pending` after that delete ended: `deleted` again
    (while a delete still runs, the sequence is odd and its `end_delete` says so). True if it changed."""
    if row.deleted_at is None or (row.delete_seq or 0) % 2 == 1 or row.status not in pending:
        return False
    row.status, row.chunks, row.error, row.updated_at = "deleted", 0, None, utcnow()
    return True
