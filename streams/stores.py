"""The stores a process works with, one per aggregate, over one shared `Database`.

Built once by the runtime (or a CLI command) and handed down: a worker or route takes the store of
the aggregate it changes (`stores.tasks`, `stores.documents`, ...), never a catch-all.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluation.eval_store import EvalStore
from indexing.document_store import DocumentStore
from models.registry import ModelRegistry
from schemas.database import Database
from schemas.settings import Settings
from streams.callback_deliveries import CallbackDeliveries
from streams.ledger import EventLedger
from streams.task_attempts import TaskAttempts
from streams.task_store import TaskStore
from trainers.feedback_store import FeedbackStore


@dataclass(frozen=True)
class Stores:
    db: Database
    tasks: TaskStore
    attempts: TaskAttempts
    documents: DocumentStore
    ledger: EventLedger
    feedback: FeedbackStore
    evals: EvalStore
    registry: ModelRegistry
    callbacks: CallbackDeliveries

    @classmethod
    def of(cls, db: Database, *, outbox_scope: str | None = None) -> Stores:
        """`outbox_scope` (the broker's topic prefix): where the registry's transitions write their `model.updated`."""
        return cls(db, TaskStore(db), TaskAttempts(db), DocumentStore(db), EventLedger(db), FeedbackStore(db), EvalStore(db),
                   ModelRegistry(db, outbox_scope=outbox_scope), CallbackDeliveries(db))

    @classmethod
    def from_settings(cls, settings: Settings) -> Stores:
        return cls.of(Database.from_settings(settings), outbox_scope=settings.broker.topic_prefix)
