"""Online evaluation results: one row of metrics per answered task, tagged with the model version
that answered and the tenant it answered, so versions can be compared on the traffic they served;
and the latest window summary per version (`version_windows`).

A row's `created_at` is when the answer was given (the response's time), so "the answers since the
canary started" means the same thing to every eval worker, however late it scored them. Besides the
metrics a row holds two flags the windows count: `downvote` (the latest rating was down) and
`error` (an empty answer); `perplexity` arrives later from the sampler. A re-score keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from evaluation.question_groups import normalise, question_of
from schemas.database import Database
from schemas.tables import EvalRecord, FeedbackRecord, TaskRecord, VersionWindowRecord

KEPT_ON_RESCORE = ("downvote", "perplexity")  # written by other events than the scoring itself


class EvalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save_eval(self, row: EvalRecord) -> None:
        """Keep the latest metrics of a task (a redelivered response overwrites, never duplicates),
        with the rating and perplexity an earlier event wrote."""
        def save() -> None:
            with self.db.session() as s:
                old = s.get(EvalRecord, row.task_id)
                if old is not None:
                    kept = {k: old.metrics[k] for k in KEPT_ON_RESCORE if old.metrics.get(k) is not None and row.metrics.get(k) is None}
                    row.metrics = {**row.metrics, **kept}
                s.merge(row)
                s.commit()

        _once_more_on_conflict(save)

    def add_metrics(self, task_id: str, values: dict[str, Any]) -> EvalRecord | None:
        """Merge `values` into a task's metrics (a rating, a late perplexity); None when the task has no row yet."""
        with self.db.session() as s:
            row = s.exec(select(EvalRecord).where(EvalRecord.task_id == task_id).with_for_update()).first()
            if row is None:
                return None
            row.metrics = {**row.metrics, **values}
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    def get(self, task_id: str) -> EvalRecord | None:
        with self.db.session() as s:
            return s.get(EvalRecord, task_id)

    def rows(self, version: str, tenant: str | None, *, since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Metrics of `version`'s answers (to `tenant`, or to everyone when None) since `since`, newest first."""
        statement = select(EvalRecord.metrics).where(EvalRecord.model_version == version).order_by(col(EvalRecord.created_at).desc())
        if tenant is not None:
            statement = statement.where(EvalRecord.tenant == tenant)
        if since is not None:
            statement = statement.where(col(EvalRecord.created_at) >= since)
        with self.db.session() as s:
            return [dict(m) for m in s.exec(statement.limit(limit)).all()]

    def rows_with_questions(self, version: str, tenant: str, *, since: datetime) -> list[tuple[str, dict[str, Any]]]:
        """(question, metrics) of `version`'s answers to `tenant` since `since`: the canary judge groups them by question."""
        statement = (select(TaskRecord.request, EvalRecord.metrics)
                     .join(TaskRecord, col(TaskRecord.id) == col(EvalRecord.task_id), isouter=True)  # a row whose task is gone still counts
                     .where(EvalRecord.model_version == version, EvalRecord.tenant == tenant, col(EvalRecord.created_at) >= since))
        with self.db.session() as s:
            return [(question_of(request or {}), dict(metrics)) for request, metrics in s.exec(statement).all()]

    def corrected_questions(self, tenant: str) -> set[str]:
        """The normalised questions `tenant` ever corrected: what the tenant's adapter was taught to answer differently."""
        statement = (select(TaskRecord.request).join(FeedbackRecord, col(FeedbackRecord.task_id) == col(TaskRecord.id))
                     .where(FeedbackRecord.tenant == tenant, col(FeedbackRecord.correction).is_not(None)))
        with self.db.session() as s:
            return {normalise(question_of(request)) for request in s.exec(statement).all()}

    def failed_tasks(self, version: str, tenant: str, since: datetime) -> int:
        """Tasks of `tenant` that failed on `version` since `since`: answers that never came count as errors."""
        with self.db.session() as s:
            return s.exec(select(func.count()).select_from(TaskRecord).where(
                TaskRecord.tenant == tenant, TaskRecord.model_version == version, TaskRecord.status == "failed",
                col(TaskRecord.created_at) >= since)).one()

    def save_windows(self, rows: list[VersionWindowRecord]) -> None:
        def save() -> None:
            with self.db.session() as s:
                for row in rows:
                    s.merge(row)
                s.commit()

        _once_more_on_conflict(save)

    def windows(self, version: str) -> list[VersionWindowRecord]:
        with self.db.session() as s:
            return list(s.exec(select(VersionWindowRecord).where(VersionWindowRecord.version == version)).all())


def _once_more_on_conflict(save: Callable[[], None]) -> None:
    """Two eval workers may insert the same row at once (merge reads, then inserts): the loser's
    second try finds the row and updates it."""
    try:
        save()
    except IntegrityError:
        save()
