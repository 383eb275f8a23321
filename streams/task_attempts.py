"""The attempts of chat tasks: who tried, when, and how each try ended.

Recovery after a dead agent must be visible: the sweep marks the lapsed attempt `lease_expired`
(a task shows `lease_expired` until another agent claims it), the next claim starts attempt N+1
with its own start time, and `GET /v1/tasks/{id}` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import and_, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import TaskAttemptRecord, TaskRecord
from streams.task_store import claim_statement, transition_statement

LAPSED = "lease_expired"  # how an attempt ends when its agent stopped renewing (died or hung)


@dataclass(frozen=True)
class Lapse:
    """What the sweep does about a lapsed lease, and how many leases of the task have lapsed."""

    action: Literal["retry", "give_up"]
    lapses: int


class TaskAttempts:
    """The `task_attempts` table, written in the same transactions as the task it belongs to."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, task_id: str, agent: str, lease_s: float) -> int | None:
        """Claim the task (`claim_statement`) and record the attempt this starts, in one transaction
        and with one clock reading; returns the attempt's number, or None when it was not claimable.
        Another agent's attempt still open (a redelivery reached us before the sweep) is closed as lapsed."""
        now = utcnow()
        with self.db.session() as s:
            if not s.exec(claim_statement(task_id, agent, lease_s, now)).rowcount:
                s.rollback()
                return None
            number = s.exec(select(TaskRecord.attempts).where(TaskRecord.id == task_id)).one()
            s.execute(update(TaskAttemptRecord)
                      .where(col(TaskAttemptRecord.task_id) == task_id, col(TaskAttemptRecord.outcome) == "running",
                             col(TaskAttemptRecord.agent) != agent, col(TaskAttemptRecord.attempt) < number)
                      .values(outcome=LAPSED, ended_at=now))
            s.add(TaskAttemptRecord(task_id=task_id, attempt=number, agent=agent, started_at=now))
            s.commit()
            return number

    def end(self, task_id: str, attempt: int, agent: str, outcome: str) -> None:
        """Close this agent's running attempt; an attempt already closed (e.g. marked lapsed) keeps its outcome."""
        with self.db.session() as s:
            s.execute(_close(task_id, attempt, outcome).where(col(TaskAttemptRecord.agent) == agent))
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

    def lapse(self, task: TaskRecord, lease_s: float, max_attempts: int) -> Lapse | None:
        """The sweep's decision for a task whose lease lapsed, taken by exactly one sweeper: a
        compare-and-set marks the attempt `lease_expired` (when the lease first lapses, and again
        only if nobody claimed the task for another whole lease), and whoever marks it decides:
        `retry` (publish the request again), or `give_up` once `max_attempts` leases have lapsed.
        None when another sweeper already took the decision (or it is not due yet)."""
        now = utcnow()
        with self.db.session() as s:
            due = or_(col(TaskAttemptRecord.outcome) == "running",
                      and_(col(TaskAttemptRecord.outcome) == LAPSED, col(TaskAttemptRecord.ended_at) <= now - timedelta(seconds=lease_s)))
            marked = s.exec(update(TaskAttemptRecord)
                            .where(col(TaskAttemptRecord.task_id) == task.id, col(TaskAttemptRecord.attempt) == task.attempts, due)
                            .values(outcome=LAPSED, ended_at=now)).rowcount
            if not marked:
                if s.get(TaskAttemptRecord, (task.id, task.attempts)) is not None:
                    return None
                s.add(TaskAttemptRecord(task_id=task.id, attempt=task.attempts, agent=task.lease_owner or "unknown",  # claimed
                                        started_at=task.started_at or now, outcome=LAPSED, ended_at=now))  # before attempts were recorded
                try:
                    s.flush()
                except IntegrityError:  # another sweeper recorded it first
                    s.rollback()
                    return None
            lapses = s.exec(select(func.count()).select_from(TaskAttemptRecord)
                            .where(TaskAttemptRecord.task_id == task.id, TaskAttemptRecord.outcome == LAPSED)).one()
            s.commit()
            return Lapse("give_up" if lapses >= max_attempts else "retry", int(lapses))

    def give_up(self, task: TaskRecord, reason: str) -> bool:
        """Fail a task whose lease lapsed too often, unless an agent claimed it since the sweep saw it."""
        statement = transition_statement(task.id, from_states=("running",), to="failed", error=reason)
        return self.db.changed(statement.where(col(TaskRecord.attempts) == task.attempts, col(TaskRecord.lease_expires_at) < utcnow()))

    def of(self, task_id: str) -> list[TaskAttemptRecord]:
        with self.db.session() as s:
            return list(s.exec(select(TaskAttemptRecord).where(TaskAttemptRecord.task_id == task_id).order_by(col(TaskAttemptRecord.attempt))))


def _close(task_id: str, attempt: int, outcome: str) -> Any:
    running = (col(TaskAttemptRecord.task_id) == task_id, col(TaskAttemptRecord.attempt) == attempt, col(TaskAttemptRecord.outcome) == "running")
    return update(TaskAttemptRecord).where(*running).values(outcome=outcome, ended_at=utcnow())
