"""Durable state behind the gateway and the workers: tasks, documents, feedback, evals, versions.

Every method is one short transaction and safe to repeat: inserts are keyed by natural ids and
state changes are compare-and-set, so a redelivered event never applies its effect twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import event as sa_event
from sqlalchemy import and_, case, delete, func, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlmodel import Session, SQLModel, col, create_engine, select

from schemas.events import ChatRequest, utcnow
from schemas.settings import Settings
from schemas.tables import (
    TERMINAL_TASK_STATES,
    DocumentRecord,
    EvalRecord,
    FeedbackRecord,
    LargeLaneRecord,
    ModelVersionRecord,
    ProcessedEvent,
    TaskRecord,
)


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa_event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _: Any) -> None:  # readers never block the writer
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


LaneEntry = Literal["entered", "waiting", "done"]
LANE_TOMBSTONE_TTL = timedelta(days=7)  # Kafka's default retention: no redelivery is older


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._create_tables()

    def _create_tables(self, attempts: int = 5) -> None:
        # Workers start together; on PostgreSQL two concurrent CREATE TABLEs race on the catalog.
        # The loser's retry finds the tables (create_all checks first), so retrying is enough.
        for attempt in range(attempts):
            try:
                SQLModel.metadata.create_all(self.engine)
                return
            except (IntegrityError, ProgrammingError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(make_engine(settings))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _insert_once(self, row: SQLModel) -> bool:
        """Insert a row keyed by a natural id; False when it was already there."""
        with self.session() as s:
            s.add(row)
            try:
                s.commit()
                return True
            except IntegrityError:
                s.rollback()
                return False

    # --- idempotency ledger ---------------------------------------------------------------------
    def already_processed(self, consumer: str, event_id: str) -> bool:
        with self.session() as s:
            return s.get(ProcessedEvent, (consumer, event_id)) is not None

    def processed_among(self, consumer: str, event_ids: Iterable[str]) -> set[str]:
        """Which of these events the consumer group has already handled, in one query."""
        ids = list(event_ids)
        if not ids:
            return set()
        with self.session() as s:
            rows = s.exec(select(ProcessedEvent.event_id).where(ProcessedEvent.consumer == consumer,
                                                                col(ProcessedEvent.event_id).in_(ids)))
            return set(rows.all())

    def mark_processed_many(self, consumer: str, event_ids: Iterable[str]) -> None:
        """Record a batch's events in one statement. Ids already recorded (a redelivery racing
        another worker) are skipped by the database, not by a read-then-write that could race."""
        inserts = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}
        if self.engine.dialect.name not in inserts:
            raise NotImplementedError(f"the store supports SQLite and PostgreSQL, not {self.engine.dialect.name}")
        insert, now = inserts[self.engine.dialect.name], utcnow()
        # Sorted, so two workers recording overlapping batches lock rows in the same order (no deadlock).
        rows = [{"consumer": consumer, "event_id": event_id, "processed_at": now} for event_id in sorted(set(event_ids))]
        with self.session() as s:
            for start in range(0, len(rows), 300):  # 3 parameters a row: well under SQLite's 999 per statement
                s.execute(insert(ProcessedEvent).values(rows[start:start + 300]).on_conflict_do_nothing())
            s.commit()

    # --- tasks ----------------------------------------------------------------------------------
    def create_task(self, task: TaskRecord) -> bool:
        return self._insert_once(task)

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self.session() as s:
            return s.get(TaskRecord, task_id)

    def find_task_by_idempotency_key(self, tenant: str, key: str) -> TaskRecord | None:
        with self.session() as s:
            return s.exec(select(TaskRecord).where(TaskRecord.tenant == tenant, TaskRecord.idempotency_key == key)).first()

    def count_queued(self, tenant: str | None = None) -> int:
        return self.queue_depth(tenant)[1 if tenant is not None else 0]

    def queue_depth(self, tenant: str | None) -> tuple[int, int]:
        """Waiting tasks overall and of `tenant`, in one query (checked on every submission)."""
        with self.session() as s:
            mine = func.coalesce(func.sum(case((TaskRecord.tenant == tenant, 1), else_=0)), 0)
            statement = select(func.count(), mine).select_from(TaskRecord).where(TaskRecord.status == "queued")
            total, of_tenant = s.exec(statement).one()
            return int(total), int(of_tenant)

    def transition_task(self, task_id: str, *, from_states: Iterable[str], to: str, **values: Any) -> bool:
        """Compare-and-set: move a task only if it is in one of `from_states`."""
        return self._changed(transition_statement(task_id, from_states=from_states, to=to, **values))

    def renew_lease(self, task_id: str, owner: str, lease_s: float) -> bool:
        """Extend the visibility timeout; False when the task was cancelled or taken over meanwhile."""
        statement = (
            update(TaskRecord)
            .where(col(TaskRecord.id) == task_id, col(TaskRecord.status) == "running", col(TaskRecord.lease_owner) == owner)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        )
        return self._changed(statement)

    def expired_leases(self) -> list[TaskRecord]:
        with self.session() as s:
            statement = select(TaskRecord).where(TaskRecord.status == "running", col(TaskRecord.lease_expires_at) < utcnow())
            return list(s.exec(statement).all())

    def _changed(self, statement: Any) -> bool:
        with self.session() as s:
            changed = s.exec(statement).rowcount  # type: ignore[call-overload]
            s.commit()
            return bool(changed)

    # --- documents ------------------------------------------------------------------------------
    def upsert_document(self, document_id: str, tenant: str, **values: Any) -> None:
        self.upsert_documents([(document_id, tenant, values)])

    def upsert_documents(self, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
        """``upsert_document`` for many (document id, tenant, values) in one transaction."""
        with self.session() as s:
            now = utcnow()
            for document_id, tenant, values in rows:
                row = s.get(DocumentRecord, document_id) or DocumentRecord(id=document_id, tenant=tenant)
                for name, value in values.items():
                    setattr(row, name, value)
                row.updated_at = now
                s.add(row)
            s.commit()

    def get_document(self, document_id: str) -> DocumentRecord | None:
        with self.session() as s:
            return s.get(DocumentRecord, document_id)

    # --- large-document lane --------------------------------------------------------------------
    def enter_large_lane(self, document_id: str, event_id: str) -> LaneEntry:
        """Record the move of one event: `entered` the first time; for a redelivered move,
        `waiting` while the lane has not finished it (publish it again: the lane de-duplicates)
        or `done` once it has (nothing to do: publishing or re-queueing would undo its result)."""
        if self._insert_once(LargeLaneRecord(document_id=document_id, event_id=event_id)):
            return "entered"
        with self.session() as s:
            row = s.get(LargeLaneRecord, (document_id, event_id))
            return "done" if row is not None and row.left_at is not None else "waiting"

    def leave_large_lane(self, document_id: str, event_id: str) -> None:
        """Mark the event done on the lane; tombstones older than `LANE_TOMBSTONE_TTL` go at the
        same time (a move is redelivered within a consumer session, long before that)."""
        now = utcnow()
        with self.session() as s:
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
        with self.session() as s:
            rows = s.exec(select(LargeLaneRecord.document_id).where(col(LargeLaneRecord.document_id).in_(ids),
                                                                    col(LargeLaneRecord.left_at).is_(None)))
            return set(rows.all())

    # --- feedback -------------------------------------------------------------------------------
    def add_feedback(self, row: FeedbackRecord) -> bool:
        return self._insert_once(row)

    def unclaimed_corrections(self) -> int:
        with self.session() as s:
            statement = select(func.count()).select_from(FeedbackRecord).where(
                col(FeedbackRecord.correction).is_not(None), col(FeedbackRecord.train_request_id).is_(None)
            )
            return int(s.exec(statement).one())

    def claim_corrections(self, train_request_id: str) -> list[str]:
        """Atomically hand every unclaimed correction to one training run; returns their ids."""
        with self.session() as s:
            s.exec(  # type: ignore[call-overload]
                update(FeedbackRecord)
                .where(col(FeedbackRecord.correction).is_not(None), col(FeedbackRecord.train_request_id).is_(None))
                .values(train_request_id=train_request_id)
            )
            s.commit()
        return self.claimed_by(train_request_id)

    def claimed_by(self, train_request_id: str) -> list[str]:
        with self.session() as s:
            rows = s.exec(select(FeedbackRecord.id).where(FeedbackRecord.train_request_id == train_request_id))
            return sorted(rows.all())

    def corrections_with_tasks(self) -> list[tuple[FeedbackRecord, TaskRecord]]:
        """Every correction ever given, with the task it corrects (training data for the next adapter)."""
        with self.session() as s:
            statement = (
                select(FeedbackRecord, TaskRecord)
                .join(TaskRecord, col(TaskRecord.id) == col(FeedbackRecord.task_id))
                .where(col(FeedbackRecord.correction).is_not(None))
                .order_by(col(FeedbackRecord.created_at))
            )
            return [(f, t) for f, t in s.exec(statement).all()]

    def approved_tasks(self, limit: int) -> list[TaskRecord]:
        """Up to `limit` distinct tasks users rated up, latest up-vote first, leaving out any task
        that was also corrected or rated down: answers that worked, for rehearsal and the gate."""
        if limit <= 0:
            return []
        disputed = (select(FeedbackRecord.task_id)
                    .where(or_(col(FeedbackRecord.correction).is_not(None), col(FeedbackRecord.rating) == "down")))
        last_up = func.max(FeedbackRecord.created_at)
        with self.session() as s:
            statement = (
                select(TaskRecord)
                .join(FeedbackRecord, col(TaskRecord.id) == col(FeedbackRecord.task_id))
                .where(col(FeedbackRecord.rating) == "up", col(TaskRecord.id).not_in(disputed))
                .group_by(col(TaskRecord.id))
                .order_by(last_up.desc())
                .limit(limit)
            )
            return list(s.exec(statement).all())

    # --- evaluation -----------------------------------------------------------------------------
    def save_eval(self, row: EvalRecord) -> None:
        with self.session() as s:
            s.merge(row)
            s.commit()

    def get_eval(self, task_id: str) -> EvalRecord | None:
        with self.session() as s:
            return s.get(EvalRecord, task_id)

    # --- model versions -------------------------------------------------------------------------
    def ensure_base_version(self, family: str) -> ModelVersionRecord:
        """The base model is version `<family>@base`, active until an adapter beats it."""
        version = f"{family}@base"
        self._insert_once(ModelVersionRecord(version=version, family=family, state="active"))
        with self.session() as s:
            if s.exec(select(ModelVersionRecord).where(ModelVersionRecord.family == family, ModelVersionRecord.state == "active")).first() is None:
                s.exec(update(ModelVersionRecord).where(col(ModelVersionRecord.version) == version).values(state="active"))  # type: ignore[call-overload]
                s.commit()
        return self.active_version(family)

    def active_version(self, family: str) -> ModelVersionRecord:
        with self.session() as s:
            row = s.exec(select(ModelVersionRecord).where(ModelVersionRecord.family == family, ModelVersionRecord.state == "active")).first()
            if row is None:
                raise LookupError(f"no active model version for {family!r}")
            return row

    def get_version(self, version: str) -> ModelVersionRecord | None:
        with self.session() as s:
            return s.get(ModelVersionRecord, version)

    def list_versions(self, family: str | None = None) -> list[ModelVersionRecord]:
        with self.session() as s:
            statement = select(ModelVersionRecord).order_by(col(ModelVersionRecord.created_at))
            if family:
                statement = statement.where(ModelVersionRecord.family == family)
            return list(s.exec(statement).all())

    def register_version(self, row: ModelVersionRecord) -> None:
        with self.session() as s:
            s.merge(row)
            s.commit()

    def count_versions(self, family: str) -> int:
        with self.session() as s:
            return int(s.exec(select(func.count()).select_from(ModelVersionRecord).where(ModelVersionRecord.family == family)).one())

    def activate_version(self, family: str, version: str) -> None:
        """Make `version` the one active version of its family, retiring the previous one, atomically."""
        with self.session() as s:
            s.exec(  # type: ignore[call-overload]
                update(ModelVersionRecord)
                .where(col(ModelVersionRecord.family) == family, col(ModelVersionRecord.state) == "active", col(ModelVersionRecord.version) != version)
                .values(state="retired")
            )
            s.exec(update(ModelVersionRecord).where(col(ModelVersionRecord.version) == version).values(state="active"))  # type: ignore[call-overload]
            s.commit()

    # --- callbacks ------------------------------------------------------------------------------
    # A finished task's lease columns are free, so they hold the callback sender's lease: a sender
    # that dies mid-delivery leaves the callback to whoever finds the lease lapsed.
    def callbacks_due(self, limit: int = 100) -> list[TaskRecord]:
        """Finished tasks whose callback nobody is delivering: not started yet, or the sender's lease lapsed."""
        with self.session() as s:
            statement = (select(TaskRecord).where(col(TaskRecord.status).in_(TERMINAL_TASK_STATES), _callback_claimable(utcnow()))
                         .order_by(col(TaskRecord.finished_at)).limit(limit))
            return list(s.exec(statement).all())

    def claim_callback(self, task_id: str, owner: str, lease_s: float) -> bool:
        """Compare-and-set `pending` (or a lapsed `delivering`) → `delivering`: exactly one sender delivers."""
        now = utcnow()
        statement = (
            update(TaskRecord)
            .where(col(TaskRecord.id) == task_id, col(TaskRecord.status).in_(TERMINAL_TASK_STATES), _callback_claimable(now))
            .values(callback_status="delivering", lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
        )
        return self._changed(statement)

    def record_callback_attempt(self, task_id: str, owner: str, *, status: str) -> bool:
        """Count one attempt and set the outcome (`delivering` while retrying, then `delivered` | `failed`);
        False when this sender no longer holds the callback (its lease lapsed and another took it)."""
        final = {"lease_owner": None, "lease_expires_at": None} if status != "delivering" else {}
        statement = (
            update(TaskRecord)
            .where(col(TaskRecord.id) == task_id, col(TaskRecord.lease_owner) == owner, col(TaskRecord.callback_status) == "delivering")
            .values(callback_status=status, callback_attempts=TaskRecord.callback_attempts + 1, **final)
        )
        return self._changed(statement)


def transition_statement(task_id: str, *, from_states: Iterable[str], to: str, held_by: str | None = None, **values: Any) -> Any:
    """Compare-and-set on the status (and, with `held_by`, on the lease owner: an agent whose task was
    taken over cannot finish it); a terminal state stamps `finished_at` and clears the lease."""
    stamps = {"finished_at": utcnow(), "lease_owner": None, "lease_expires_at": None} if to in TERMINAL_TASK_STATES else {}
    guards = [col(TaskRecord.id) == task_id, col(TaskRecord.status).in_(list(from_states))]
    if held_by is not None:
        guards.append(col(TaskRecord.lease_owner) == held_by)
    return update(TaskRecord).where(*guards).values(status=to, **stamps, **values)


def claim_statement(task_id: str, owner: str, lease_s: float, now: datetime) -> Any:
    """Take a queued task, a running one whose holder stopped renewing its lease (a dead worker),
    or one this owner already holds (its own retry after a failed attempt). `started_at` stays the
    first attempt's; each attempt's own start is in `task_attempts`."""
    claimable = or_(col(TaskRecord.status) == "queued",
                    and_(col(TaskRecord.status) == "running",
                         or_(col(TaskRecord.lease_expires_at) < now, col(TaskRecord.lease_owner) == owner)))
    return (
        update(TaskRecord)
        .where(col(TaskRecord.id) == task_id, claimable)
        .values(status="running", lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s),
                started_at=func.coalesce(TaskRecord.started_at, now), attempts=TaskRecord.attempts + 1)
    )


def task_from_request(request: ChatRequest, *, idempotency_key: str | None = None) -> TaskRecord:
    """The row a chat request becomes, whoever accepted it (gateway, CLI, or the agent for raw producers)."""
    return TaskRecord(id=request.task_id, tenant=request.tenant, conversation_id=request.conversation_id,
                      priority=request.options.priority, idempotency_key=idempotency_key, callback_url=request.callback_url,
                      callback_status="pending" if request.callback_url else None, request=request.model_dump(mode="json"))


def _callback_claimable(now: Any) -> Any:
    return or_(col(TaskRecord.callback_status) == "pending",
               and_(col(TaskRecord.callback_status) == "delivering", col(TaskRecord.lease_expires_at) < now))
