"""Callback deliveries: which finished tasks still owe their `callback_url` an answer, and which
sender holds each one.

A sender leases a delivery (`claim_callback`) for all its attempts; one that dies mid-delivery
leaves it to whoever finds the lease lapsed. The lease is the delivery's own (`callback_deliveries`),
never the task's, so the agent's lease and the sender's cannot overwrite each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import TERMINAL_TASK_STATES, CallbackDeliveryRecord, TaskRecord


class CallbackDeliveries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, task_id: str) -> CallbackDeliveryRecord | None:
        with self.db.session() as s:
            return s.get(CallbackDeliveryRecord, task_id)

    def callbacks_due(self, limit: int = 100) -> list[TaskRecord]:
        """Finished tasks whose callback nobody is delivering: not started yet, or the sender's lease lapsed."""
        with self.db.session() as s:
            statement = (select(TaskRecord)
                         .join(CallbackDeliveryRecord, col(CallbackDeliveryRecord.task_id) == col(TaskRecord.id))
                         .where(col(TaskRecord.status).in_(TERMINAL_TASK_STATES), _claimable(utcnow()))
                         .order_by(col(TaskRecord.finished_at)).limit(limit))
            return list(s.exec(statement).all())

    def claim_callback(self, task_id: str, owner: str, lease_s: float) -> bool:
        """Compare-and-set `pending` (or a lapsed `delivering`) → `delivering` on a finished task:
        exactly one sender delivers."""
        now = utcnow()
        finished = select(TaskRecord.id).where(col(TaskRecord.id) == task_id, col(TaskRecord.status).in_(TERMINAL_TASK_STATES))
        statement = (
            update(CallbackDeliveryRecord)
            .where(col(CallbackDeliveryRecord.task_id) == task_id, col(CallbackDeliveryRecord.task_id).in_(finished), _claimable(now))
            .values(status="delivering", lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
        )
        return self.db.changed(statement)

    def record_callback_attempt(self, task_id: str, owner: str, *, status: str) -> bool:
        """Count one attempt and set the outcome (`delivering` while retrying, then `delivered` | `failed`);
        False when this sender no longer holds the callback (its lease lapsed and another took it)."""
        final = {"lease_owner": None, "lease_expires_at": None} if status != "delivering" else {}
        statement = (
            update(CallbackDeliveryRecord)
            .where(col(CallbackDeliveryRecord.task_id) == task_id, col(CallbackDeliveryRecord.lease_owner) == owner,
                   col(CallbackDeliveryRecord.status) == "delivering")
            .values(status=status, attempts=CallbackDeliveryRecord.attempts + 1, **final)
        )
        return self.db.changed(statement)


def _claimable(now: datetime) -> Any:
    return or_(col(CallbackDeliveryRecord.status) == "pending",
               and_(col(CallbackDeliveryRecord.status) == "delivering", col(CallbackDeliveryRecord.lease_expires_at) < now))
