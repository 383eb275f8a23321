"""Chat tasks and their leases: the rows the task queue, the agents and the sweep move through states.

Every change is compare-and-set on the status (and, where an agent acts, on the lease owner), so a
redelivered request, a late agent or a concurrent cancel never applies its effect twice or over
another's. The attempts of each task are kept beside it, in `streams/task_attempts.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, update
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import ChatRequest, utcnow
from schemas.tables import TERMINAL_TASK_STATES, CallbackDeliveryRecord, OutboxRecord, TaskRecord


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_task(self, task: TaskRecord, *, outbox: Sequence[OutboxRecord] = ()) -> bool:
        """Insert the task once (False when its id or idempotency key is taken); a task with a
        `callback_url` is created with its pending delivery, and its `outbox` entries (the event that
        announces it) in the same transaction."""
        delivery = [CallbackDeliveryRecord(task_id=task.id)] if task.callback_url else []
        return self.db.insert_once(task, *delivery, *outbox)

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self.db.session() as s:
            return s.get(TaskRecord, task_id)

    def find_task_by_idempotency_key(self, tenant: str, key: str) -> TaskRecord | None:
        with self.db.session() as s:
            return s.exec(select(TaskRecord).where(TaskRecord.tenant == tenant, TaskRecord.idempotency_key == key)).first()

    def count_queued(self, tenant: str | None = None) -> int:
        return self.queue_depth(tenant)[1 if tenant is not None else 0]

    def queue_depth(self, tenant: str | None) -> tuple[int, int]:
        """Waiting tasks overall and of `tenant`, in one query (checked on every submission)."""
        with self.db.session() as s:
            mine = func.coalesce(func.sum(case((col(TaskRecord.tenant) == tenant, 1), else_=0)), 0)
            statement = select(func.count(), mine).select_from(TaskRecord).where(TaskRecord.status == "queued")
            total, of_tenant = s.exec(statement).one()
            return int(total), int(of_tenant)

    def transition_task(self, task_id: str, *, from_states: Iterable[str], to: str, held_by: str | None = None, **values: Any) -> bool:
        """Compare-and-set: move a task only if it is in one of `from_states` (and, for an agent, which
        passes `held_by`, only if no other agent holds it)."""
        return self.db.changed(transition_statement(task_id, from_states=from_states, to=to, held_by=held_by, **values))

    def renew_lease(self, task_id: str, owner: str, lease_s: float) -> bool:
        """Extend the visibility timeout; False when the task was cancelled or taken over meanwhile."""
        statement = (
            update(TaskRecord)
            .where(col(TaskRecord.id) == task_id, col(TaskRecord.status) == "running", col(TaskRecord.lease_owner) == owner)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        )
        return self.db.changed(statement)

    def expired_leases(self) -> list[TaskRecord]:
        with self.db.session() as s:
            statement = select(TaskRecord).where(TaskRecord.status == "running", col(TaskRecord.lease_expires_at) < utcnow())
            return list(s.exec(statement).all())


def transition_statement(task_id: str, *, from_states: Iterable[str], to: str, held_by: str | None = None, **values: Any) -> Any:
    """Compare-and-set on the status and, with `held_by`, on the lease: an agent moves only a task
    that nobody holds or that it holds itself, so one whose task was taken over can neither finish
    nor fail it. A terminal state stamps `finished_at` and clears the lease."""
    stamps = {"finished_at": utcnow(), "lease_owner": None, "lease_expires_at": None} if to in TERMINAL_TASK_STATES else {}
    guards = [col(TaskRecord.id) == task_id, col(TaskRecord.status).in_(list(from_states))]
    if held_by is not None:
        guards.append(or_(col(TaskRecord.lease_owner).is_(None), col(TaskRecord.lease_owner) == held_by))
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
                      request=request.model_dump(mode="json"))
