"""Eval role: scores every answer (`chat.responses`) and re-scores it when a correction arrives."""

from __future__ import annotations

import asyncio

from evaluation.scoring import score_answer
from schemas.events import ChatResponse, EvalResult, FeedbackEvent
from schemas.tables import EvalRecord
from streams.consumer import EventConsumer
from streams.metrics import EVAL_METRIC
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

GROUP = "ragloop.eval"


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    evals, tasks = services.stores.evals, services.stores.tasks

    async def record(response: ChatResponse, reference: str | None, event_id: str) -> None:
        latency = sum(response.timings_ms.values())
        scores = await asyncio.to_thread(score_answer, answer=response.answer, contexts=[c.text for c in response.citations],
                                         reference=reference, latency_ms=latency)
        metrics = scores.model_dump()
        await asyncio.to_thread(evals.save_eval, EvalRecord(task_id=response.task_id, model_version=response.model_version, metrics=metrics))
        for name, value in metrics.items():
            if value is not None and name not in ("latency_ms", "answer_tokens"):
                EVAL_METRIC.labels(name).observe(value)
        await publisher.publish(EvalResult(event_id=event_id, tenant=response.tenant, task_id=response.task_id,
                                           model_version=response.model_version, metrics=metrics, trace=response.trace))

    async def on_response(response: ChatResponse) -> None:
        await record(response, response.reference, f"{response.task_id}.eval")

    async def on_feedback(feedback: FeedbackEvent) -> None:
        if feedback.correction is None:
            return
        task = await asyncio.to_thread(tasks.get_task, feedback.task_id)
        if task is None or not task.result:
            return
        await record(task.result.response, feedback.correction, f"{feedback.task_id}.eval.{feedback.event_id}")

    return [
        EventConsumer(TOPICS["chat.responses"], GROUP, on_response),
        EventConsumer(TOPICS["feedback.events"], GROUP, on_feedback),
    ]
