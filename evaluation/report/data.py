"""What the report reads: the learning loop's rows (answer scores, feedback, training runs, model
decisions and the serving lines), scoped to one tenant or, for an operator, to every tenant.

A tenant's scope is its own rows plus the shared line's decisions (the versions it may be served, as
`GET /v1/models` shows them); the shared line's numbers may be measured on every tenant's traffic,
so a tenant sees those decisions without their numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from schemas.database import Database
from schemas.events import as_utc, utcnow
from schemas.tables import EvalRecord, FeedbackRecord, ModelDecisionRecord, ModelVersionRecord, TrainingRunRecord

MAX_ANSWERS = 20_000  # the newest scored answers plotted: enough for trends, bounded for a page built on request


@dataclass(frozen=True)
class ScoredAnswer:
    at: datetime
    version: str
    tenant: str | None
    metrics: dict[str, Any]


@dataclass(frozen=True)
class Rating:
    at: datetime
    rating: str
    corrected: bool


@dataclass(frozen=True)
class Run:
    id: str
    tenant: str
    recipe: str
    state: str
    version: str | None
    error: str | None
    metrics: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None

    @property
    def gate(self) -> dict[str, float]:
        """The gate's numbers (`gate_*` metrics), the ones a person reads to see why it passed or not."""
        return {k: float(v) for k, v in self.metrics.items() if k.startswith("gate") and isinstance(v, int | float) and not isinstance(v, bool)}


@dataclass(frozen=True)
class Decision:
    at: datetime
    tenant: str | None
    version: str
    action: str
    actor: str
    reason: str
    numbers: dict[str, Any]


@dataclass(frozen=True)
class Line:
    """A version serving a line: `tenant` None is the shared line."""

    tenant: str | None
    version: str
    state: str
    canary_share: float | None


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows; `tenant` None means every tenant (the operator's view)."""

    tenant: str | None
    generated_at: datetime
    answers: list[ScoredAnswer] = field(default_factory=list)
    ratings: list[Rating] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)  # the active and canary versions in scope

    @property
    def empty(self) -> bool:
        return not (self.answers or self.ratings or self.runs or self.decisions)


def load_report_data(db: Database, *, tenant: str | None = None, max_answers: int = MAX_ANSWERS) -> ReportData:
    """Read the rows of `tenant` (None: every tenant), oldest first."""
    with db.session() as s:
        answers = select(EvalRecord).order_by(col(EvalRecord.created_at).desc()).limit(max_answers)
        ratings = select(FeedbackRecord).order_by(col(FeedbackRecord.created_at))
        runs = select(TrainingRunRecord).order_by(col(TrainingRunRecord.started_at))
        decisions = select(ModelDecisionRecord).order_by(col(ModelDecisionRecord.at), col(ModelDecisionRecord.id))
        lines = select(ModelVersionRecord).where(col(ModelVersionRecord.state).in_(("active", "canary"))).order_by(col(ModelVersionRecord.created_at))
        if tenant is not None:
            answers = answers.where(EvalRecord.tenant == tenant)
            ratings = ratings.where(FeedbackRecord.tenant == tenant)
            runs = runs.where(TrainingRunRecord.tenant == tenant)
            decisions = decisions.where(col(ModelDecisionRecord.tenant).is_(None) | (col(ModelDecisionRecord.tenant) == tenant))
            lines = lines.where(col(ModelVersionRecord.tenant).is_(None) | (col(ModelVersionRecord.tenant) == tenant))
        return ReportData(
            tenant=tenant,
            generated_at=utcnow(),
            answers=[ScoredAnswer(as_utc(r.created_at), r.model_version, r.tenant, r.metrics or {}) for r in reversed(s.exec(answers).all())],
            ratings=[Rating(as_utc(r.created_at), r.rating, bool(r.correction and r.correction.strip())) for r in s.exec(ratings).all()],
            runs=[Run(r.id, r.tenant, r.recipe, r.state, r.version, r.error, r.metrics or {}, as_utc(r.started_at),
                      as_utc(r.finished_at) if r.finished_at else None) for r in s.exec(runs).all()],
            decisions=[_decision(r, tenant) for r in s.exec(decisions).all()],
            lines=[Line(r.tenant, r.version, r.state, r.canary_share) for r in s.exec(lines).all()],
        )


def _decision(row: ModelDecisionRecord, tenant: str | None) -> Decision:
    hidden = tenant is not None and row.tenant is None  # the shared line's numbers may count other tenants' traffic
    return Decision(as_utc(row.at), row.tenant, row.version, row.action, row.actor, row.reason, {} if hidden else (row.numbers or {}))
