"""Online evaluation results: one row of metrics per answered task, tagged with the model version
that answered, so versions can be compared on the traffic they served."""

from __future__ import annotations

from schemas.database import Database
from schemas.tables import EvalRecord


class EvalStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save_eval(self, row: EvalRecord) -> None:
        """Keep the latest metrics of a task (a redelivered response overwrites, never duplicates)."""
        with self.db.session() as s:
            s.merge(row)
            s.commit()
