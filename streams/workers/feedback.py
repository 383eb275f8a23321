"""Feedback role: stores ratings and corrections; asks for training once enough corrections wait.

The threshold policy is data (`RAGLOOP_FEEDBACK_MIN_CORRECTIONS`). Claiming corrections for a run
is one atomic UPDATE keyed by the triggering feedback's id, so a redelivered event re-publishes
the same training request instead of starting a second one.
"""

from __future__ import annotations

import asyncio

from schemas.events import FeedbackEvent, TrainRequest
from schemas.tables import FeedbackRecord
from streams.consumer import EventConsumer, PermanentError
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

GROUP = "ragloop.feedback"


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    tasks, store, settings = services.stores.tasks, services.stores.feedback, services.settings

    async def on_feedback(feedback: FeedbackEvent) -> None:
        if await asyncio.to_thread(tasks.get_task, feedback.task_id) is None:
            raise PermanentError(f"feedback for unknown task_id {feedback.task_id!r}")
        await asyncio.to_thread(store.add_feedback, FeedbackRecord(
            id=feedback.event_id, task_id=feedback.task_id, tenant=feedback.tenant, rating=feedback.rating,
            correction=feedback.correction, comment=feedback.comment))
        claimed = await asyncio.to_thread(store.claimed_by, feedback.event_id)
        if not claimed and await asyncio.to_thread(store.unclaimed_corrections) >= settings.training.feedback_min_corrections:
            claimed = await asyncio.to_thread(store.claim_corrections, feedback.event_id)
        if claimed:
            await publisher.publish(TrainRequest(
                event_id=feedback.event_id, tenant=feedback.tenant, model_family=settings.llm.model_family,
                reason=f"{len(claimed)} corrections reached the threshold of {settings.training.feedback_min_corrections}"))

    return [EventConsumer(TOPICS["feedback.events"], GROUP, on_feedback)]
