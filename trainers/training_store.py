"""Training runs and the feedback policy's decisions, per tenant: what `GET /v1/training-runs` shows,
and the claim that keeps one tenant's runs from overlapping.

`start_run` is the claim: a run row is `running` until `finish_run`; while one tenant has a running
row no second run of that tenant starts, and a redelivered request finds its own row and does not
train again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from schemas.database import Database
from schemas.events import utcnow
from schemas.tables import EvalRecord, TrainingDecisionRecord, TrainingRunRecord


class TrainingStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- decisions ---------------------------------------------------------------------------

    def record_decision(self, row: TrainingDecisionRecord) -> TrainingDecisionRecord:
        """Keep the first decision made for a feedback event (a redelivery decides again, the record stays)."""
        self.db.insert_once(row)
        with self.db.session() as s:
            stored = s.get(TrainingDecisionRecord, row.id)
            assert stored is not None
            return stored

    def decisions(self, tenant: str, limit: int = 50) -> list[TrainingDecisionRecord]:
        """The tenant's latest decisions, newest first."""
        with self.db.session() as s:
            statement = (select(TrainingDecisionRecord).where(TrainingDecisionRecord.tenant == tenant)
                         .order_by(col(TrainingDecisionRecord.at).desc()).limit(limit))
            return list(s.exec(statement).all())

    def last_train_decision_at(self, tenant: str) -> datetime | None:
        """When the policy last said "train" for the tenant (the min-interval clock starts there, before the run does)."""
        with self.db.session() as s:
            statement = (select(TrainingDecisionRecord.at).where(TrainingDecisionRecord.tenant == tenant, col(TrainingDecisionRecord.train))
                         .order_by(col(TrainingDecisionRecord.at).desc()).limit(1))
            return s.exec(statement).first()

    # ---- runs --------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> TrainingRunRecord | None:
        with self.db.session() as s:
            return s.get(TrainingRunRecord, run_id)

    def runs(self, tenant: str, limit: int = 50) -> list[TrainingRunRecord]:
        with self.db.session() as s:
            statement = (select(TrainingRunRecord).where(TrainingRunRecord.tenant == tenant)
                         .order_by(col(TrainingRunRecord.started_at).desc()).limit(limit))
            return list(s.exec(statement).all())

    def running(self, tenant: str) -> list[TrainingRunRecord]:
        with self.db.session() as s:
            statement = (select(TrainingRunRecord).where(TrainingRunRecord.tenant == tenant, TrainingRunRecord.state == "running")
                         .order_by(col(TrainingRunRecord.started_at), col(TrainingRunRecord.id)))
            return list(s.exec(statement).all())

    def last_run_at(self, tenant: str) -> datetime | None:
        with self.db.session() as s:
            statement = (select(TrainingRunRecord.started_at).where(TrainingRunRecord.tenant == tenant)
                         .order_by(col(TrainingRunRecord.started_at).desc()).limit(1))
            return s.exec(statement).first()

    def start_run(self, row: TrainingRunRecord) -> tuple[bool, TrainingRunRecord]:
        """Claim the tenant's training slot for `row` (state running). Returns (True, row) when this run may train;
        (False, the existing row) when the run exists already (a redelivered request) or another run of the
        tenant is running. Two concurrent claims both insert, then the later one (by start, then id) withdraws.
        The start time is the database's clock, not the caller's: two hosts with skewed clocks would otherwise
        each see the other's run as the later one (or a new claim as older than a run already training)."""
        row.state = "running"
        if not self._insert_at_database_time(row):
            existing = self.get_run(row.id)
            assert existing is not None
            return False, existing
        running = self.running(row.tenant)
        if running and running[0].id != row.id:
            with self.db.session() as s:
                mine = s.get(TrainingRunRecord, row.id)
                if mine is not None:
                    s.delete(mine)
                    s.commit()
            return False, running[0]
        return True, row

    def _insert_at_database_time(self, row: TrainingRunRecord) -> bool:
        """Insert `row` with `started_at` from the database server's clock (PostgreSQL; SQLite is on this host,
        so its clock is the caller's); False when a run with its id exists."""
        values = row.model_dump()
        if self.db.engine.dialect.name == "postgresql":
            values["started_at"] = func.timezone("UTC", func.clock_timestamp())
        with self.db.session() as s:
            try:
                s.exec(insert(TrainingRunRecord).values(**values))
                s.commit()
            except IntegrityError:
                s.rollback()
                return False
        stored = self.get_run(row.id)
        assert stored is not None
        row.started_at = stored.started_at
        return True

    def finish_run(self, run_id: str, *, state: str, version: str | None = None, error: str | None = None,
                   metrics: dict[str, Any] | None = None) -> TrainingRunRecord:
        with self.db.session() as s:
            row = s.get(TrainingRunRecord, run_id)
            if row is None:
                raise LookupError(f"unknown training run {run_id!r}")
            row.state, row.version, row.error, row.finished_at = state, version or row.version, error, utcnow()
            row.metrics = {**row.metrics, **(metrics or {})}
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    # ---- what the policy watches -------------------------------------------------------------

    def metric_series(self, tenant: str, version: str, metric: str) -> list[float]:
        """`metric` of every scored answer `version` gave `tenant`, oldest first (the first ones are its values right after it
        went live); answers where the metric was not measurable are left out."""
        with self.db.session() as s:
            statement = (select(EvalRecord.metrics).where(EvalRecord.tenant == tenant, EvalRecord.model_version == version)
                         .order_by(col(EvalRecord.created_at)))
            values = [m.get(metric) for m in s.exec(statement).all()]
        return [float(v) for v in values if isinstance(v, int | float)]
