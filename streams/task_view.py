"""The public view of a task: the one shape the HTTP API returns, the CLI prints and callbacks POST.

It lives beside the services rather than in the gateway so that the callbacks role and the CLI can
send it without importing the gateway; the gateway publishes it in its OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.tables import TaskAttemptRecord, TaskRecord
from schemas.task_result import TaskOutcome


class TaskResult(BaseModel):
    # The public part of a task's stored `TaskOutcome`: the answer and what it cost, not the prompt.
    answer: str
    citations: list[dict[str, Any]]
    model_version: str
    timings_ms: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)

    @classmethod
    def of(cls, outcome: TaskOutcome) -> TaskResult:
        return cls(answer=outcome.answer, citations=[c.model_dump(mode="json") for c in outcome.citations],
                   model_version=outcome.model_version, timings_ms=outcome.timings_ms, usage=outcome.usage)


class AttemptOut(BaseModel):
    attempt: int
    agent: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str = Field(description="running, succeeded, failed, stopped, error or lease_expired.")


class TaskOut(BaseModel):
    task_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    conversation_id: str
    result: TaskResult | None
    error: str | None
    attempts: int
    lease_expired: bool = Field(False, description="Running, but its agent stopped renewing the lease (it likely died): "
                                                   "another agent takes it over within about RAGLOOP_TASK_LEASE_S.")
    attempt_log: list[AttemptOut] = Field(default_factory=list, description="Every attempt with its own start and outcome.")
    created_at: datetime
    started_at: datetime | None = Field(description="When the first attempt started.")
    finished_at: datetime | None

    @classmethod
    def of(cls, row: TaskRecord, attempts: Sequence[TaskAttemptRecord]) -> TaskOut:
        """The one public view of a task: the API, the CLI and callbacks all send this same shape."""
        result = TaskResult.of(row.result) if row.result else None
        return cls(task_id=row.id, status=row.status, conversation_id=row.conversation_id, result=result, error=row.error,
                   attempts=row.attempts, lease_expired=row.lease_lapsed(), attempt_log=[AttemptOut.model_validate(a.model_dump()) for a in attempts],
                   created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at)
