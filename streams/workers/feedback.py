"""Feedback role: `feedback.events` → store → the tenant's learning policy (`trainers/train_policy.py`)
→ `train.requests` when it says train.

Every look of the policy is recorded with its inputs (`training_decisions`, keyed by the feedback
event), so `GET /v1/training-runs` shows why a tenant's model did or did not retrain. A "train"
claims the tenant's unclaimed corrections under the feedback's id and publishes the request with
that id, so a redelivered event re-publishes the same request instead of starting a second run. The
request goes out only when the claim took corrections: two feedback events judged at once both say
"train", the first claims everything and the second finds nothing left, so one run starts, not two.
"""

from __future__ import annotations

import asyncio
import sys

from schemas.events import FeedbackEvent, TrainRequest
from schemas.tables import FeedbackRecord, TrainingDecisionRecord
from streams.consumer import EventConsumer, PermanentError
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS
from trainers.train_policy import decide, describe, gather, load_policy
from trainers.training_store import TrainingStore

GROUP = "ragloop.feedback"


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    tasks, store, registry, settings = services.stores.tasks, services.stores.feedback, services.stores.registry, services.settings
    training = TrainingStore(services.stores.db)
    policy, family = load_policy(settings), settings.llm.model_family
    print(describe(policy, settings), file=sys.stderr, flush=True)  # stdout is for what a CLI command prints

    def look(feedback: FeedbackEvent) -> tuple[TrainingDecisionRecord, list[str]]:
        """The policy's decision for this feedback (recorded once, the same on a redelivery) and, when it says
        train, the corrections claimed for that run (the same ones again on a redelivery)."""
        serving = registry.serving(family, feedback.tenant).active.version
        decision = decide(policy.train, gather(policy.train, feedback.tenant, serving_version=serving, feedback=store, training=training))
        record = training.record_decision(TrainingDecisionRecord(
            id=feedback.event_id, tenant=feedback.tenant, family=family, train=decision.train, reason=decision.reason,
            inputs=decision.inputs.model_dump(mode="json"), train_request_id=feedback.event_id if decision.train else None))
        return record, store.claim_corrections(feedback.event_id, feedback.tenant) if record.train else []

    async def on_feedback(feedback: FeedbackEvent) -> None:
        task = await asyncio.to_thread(tasks.get_task, feedback.task_id)
        if task is None or task.tenant != feedback.tenant:  # the API answers 404 for both; an event from elsewhere gets the same
            raise PermanentError(f"feedback for unknown task_id {feedback.task_id!r}")
        await asyncio.to_thread(store.add_feedback, FeedbackRecord(
            id=feedback.event_id, task_id=feedback.task_id, tenant=feedback.tenant, rating=feedback.rating,
            correction=feedback.correction, comment=feedback.comment))
        decision, claimed = await asyncio.to_thread(look, feedback)
        if decision.train and claimed:  # nothing claimed: another decision's run has these corrections already
            await publisher.publish(TrainRequest(event_id=feedback.event_id, tenant=feedback.tenant, model_family=family,
                                                 reason=decision.reason, trace=feedback.trace))

    return [EventConsumer(TOPICS["feedback.events"], GROUP, on_feedback)]
