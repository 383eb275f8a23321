"""The attempts of chat tasks: who tried, when, and how each try ended.

Recovery after a dead agent must be visible: the sweep marks the lapsed attempt `lease_expired`
(a task shows `lease_expired` until another agent claims it), the next claim starts attempt N+1
with its own start time, and `GET /v1/tasks/{id}` lists them all.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import as_utc, utcnow
from schemas.tables import TaskAttemptRecord, TaskRecord
from streams.task_store import claim_statement, transition_statement


class TaskAttempts:
    """The `task_attempts` table, written in the same transactions as the task it belongs to."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, task_id: str, agent: str, lease_s: float) -> int | None:
        """Claim the task (`claim_statement`) and record the attempt this starts, in one transaction
        and with one clock reading; returns the attempt's number, or None when it was not claimable."""
        now = utcnow()
        with self.db.session() as s:
            if not s.exec(claim_statement(task_id, agent, lease_s, now)).rowcount:
                s.rollback()
                return None
            number = s.exec(select(TaskRecord.attempts).where(TaskRecord.id == task_id)).one()
            s.add(TaskAttemptRecord(task_id=task_id, attempt=number, agent=agent, started_at=now))
            s.commit()
            return number

    def end(self, task_id: str, attempt: int, outcome: str) -> None:
        """Close a running attempt; an attempt already closed (e.g. marked lapsed) keeps its outcome."""
        with self.db.session() as s:
            s.execute(_close(task_id, attempt, outcome))
            s.commit()

    def finish(self, task_id: str, attempt: int, agent: str, *, to: str, **values: Any) -> bool:
        """Move the running task this agent still holds to `to` and close its attempt the same way, in one
        transaction: nobody (a reader, a callback) sees a finished task whose attempt is still running.
        False when the agent lost the task meanwhile (cancelled, or taken over after its lease lapsed)."""
        with self.db.session() as s:
            if not s.exec(transition_statement(task_id, from_states=("running",), to=to, held_by=agent, **values)).rowcount:
                s.rollback()
                return False
            s.execute(_close(task_id, attempt, to))
            s.commit()
            return True

    def due_for_retry(self, task: TaskRecord, lease_s: float) -> bool:
        """Whether the sweep should publish a retry of this lapsed task now, and mark it so: once when
        the lease first lapses, and again only if nobody claimed it for another whole lease."""
        now = utcnow()
        with self.db.session() as s:
            row = s.get(TaskAttemptRecord, (task.id, task.attempts))
            if row is None:  # claimed before attempts were recorded
                row = TaskAttemptRecord(task_id=task.id, attempt=task.attempts, agent=task.lease_owner or "unknown",
                                        started_at=task.started_at or now)
            elif row.outcome == "lease_expired" and row.ended_at is not None and as_utc(row.ended_at) > now - timedelta(seconds=lease_s):
                return False
            row.outcome, row.ended_at = "lease_expired", now
            s.add(row)
            s.commit()
            return True

    def of(self, task_id: str) -> list[TaskAttemptRecord]:
        with self.db.session() as s:
            return list(s.exec(select(TaskAttemptRecord).where(TaskAttemptRecord.task_id == task_id).order_by(col(TaskAttemptRecord.attempt))))



def _close(task_id: str, attempt: int, outcome: str) -> Any:
    running = (col(TaskAttemptRecord.task_id) == task_id, col(TaskAttemptRecord.attempt) == attempt, col(TaskAttemptRecord.outcome) == "running")
    return update(TaskAttemptRecord).where(*running).values(outcome=outcome, ended_at=utcnow())
