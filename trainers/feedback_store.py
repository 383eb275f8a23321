"""What users said about answers, read as training data: corrections to learn from, and answers
that worked (rated up, never disputed) to rehearse and to gate a candidate adapter on.

Which answers count as approved is the trainer's policy, and is stated here: `DISPUTED`.
"""

from __future__ import annotations

from sqlalchemy import func, or_, update
from sqlmodel import col, select

from schemas.database import Database
from schemas.tables import FeedbackRecord, TaskRecord

# A task is disputed when any user corrected it or rated it down, whatever others said: its answer
# is not one to rehearse, even if it was also rated up.
DISPUTED = or_(col(FeedbackRecord.correction).is_not(None), col(FeedbackRecord.rating) == "down")


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_feedback(self, row: FeedbackRecord) -> bool:
        return self.db.insert_once(row)

    def get_feedback(self, feedback_id: str) -> FeedbackRecord | None:
        with self.db.session() as s:
            return s.get(FeedbackRecord, feedback_id)

    def unclaimed_corrections_with_tasks(self, tenant: str) -> list[tuple[FeedbackRecord, TaskRecord]]:
        """The tenant's corrections no training run has claimed yet (oldest first): what is new since its last run."""
        return self.corrections_with_tasks(tenant, unclaimed=True)

    def claim_corrections(self, train_request_id: str, tenant: str) -> list[str]:
        """Atomically hand every unclaimed correction of `tenant` to one training run; returns their ids."""
        with self.db.session() as s:
            s.exec(
                update(FeedbackRecord)
                .where(col(FeedbackRecord.correction).is_not(None), col(FeedbackRecord.train_request_id).is_(None),
                       col(FeedbackRecord.tenant) == tenant)
                .values(train_request_id=train_request_id)
            )
            s.commit()
        return self.claimed_by(train_request_id)

    def release_claims(self, train_request_id: str) -> int:
        """Hand a run's corrections back (the run failed, or was refused because another run of the tenant was running):
        they count as new for the next run instead of being lost with this one. Returns how many were released."""
        with self.db.session() as s:
            released = s.exec(update(FeedbackRecord).where(col(FeedbackRecord.train_request_id) == train_request_id)
                              .values(train_request_id=None)).rowcount
            s.commit()
            return int(released)

    def claimed_by(self, train_request_id: str) -> list[str]:
        with self.db.session() as s:
            rows = s.exec(select(FeedbackRecord.id).where(FeedbackRecord.train_request_id == train_request_id))
            return sorted(rows.all())

    def corrections_with_tasks(self, tenant: str | None = None, *, unclaimed: bool = False) -> list[tuple[FeedbackRecord, TaskRecord]]:
        """Every correction `tenant` ever gave (None: every tenant's), with the task it corrects, oldest first:
        the training data of that tenant's next adapter (a tenant's adapter never learns another tenant's facts)."""
        with self.db.session() as s:
            statement = (
                select(FeedbackRecord, TaskRecord)
                .join(TaskRecord, col(TaskRecord.id) == col(FeedbackRecord.task_id))
                .where(col(FeedbackRecord.correction).is_not(None))
                .order_by(col(FeedbackRecord.created_at), col(FeedbackRecord.id))
            )
            if tenant is not None:
                statement = statement.where(col(FeedbackRecord.tenant) == tenant)
            if unclaimed:
                statement = statement.where(col(FeedbackRecord.train_request_id).is_(None))
            return [(f, t) for f, t in s.exec(statement).all()]

    def ratings_of_version(self, tenant: str, version: str, limit: int) -> list[str]:
        """The latest `limit` ratings ("up"/"down") `tenant` gave answers of `version`, newest first."""
        with self.db.session() as s:
            statement = (
                select(FeedbackRecord.rating)
                .join(TaskRecord, col(TaskRecord.id) == col(FeedbackRecord.task_id))
                .where(col(FeedbackRecord.tenant) == tenant, col(TaskRecord.model_version) == version)
                .order_by(col(FeedbackRecord.created_at).desc())
                .limit(limit)
            )
            return list(s.exec(statement).all())

    def approved_tasks(self, limit: int, tenant: str | None = None) -> list[TaskRecord]:
        """Up to `limit` distinct tasks users rated up and none `DISPUTED`, latest up-vote first:
        answers that worked, for rehearsal and the gate (only `tenant`'s when given)."""
        if limit <= 0:
            return []
        disputed = select(FeedbackRecord.task_id).where(DISPUTED)
        last_up = func.max(FeedbackRecord.created_at)
        with self.db.session() as s:
            statement = (
                select(TaskRecord)
                .join(FeedbackRecord, col(TaskRecord.id) == col(FeedbackRecord.task_id))
                .where(col(FeedbackRecord.rating) == "up", col(TaskRecord.id).not_in(disputed),
                       *([col(TaskRecord.tenant) == tenant] if tenant is not None else []))
                .group_by(col(TaskRecord.id))
                .order_by(last_up.desc())
                .limit(limit)
            )
            return list(s.exec(statement).all())
