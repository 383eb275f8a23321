"""The eval worker's perplexity sampler never queues more than its limit: the rest is skipped and counted."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from schemas.events import ChatResponse
from streams.workers.evaluation import _Perplexity


def skipped() -> float:
    return REGISTRY.get_sample_value("ragloop_eval_perplexity_skipped_total") or 0.0


def answer(n: int) -> ChatResponse:
    return ChatResponse(task_id=f"t{n}", conversation_id="c", question="q?", answer="a.", model_version="f@base")


def test_sampled_answers_beyond_the_pending_limit_are_skipped_and_counted() -> None:
    sampler = _Perplexity(make_scorer=lambda: None, rate=1.0, queue=asyncio.Queue(2))  # type: ignore[arg-type,return-value]
    before = skipped()
    for n in range(5):
        sampler.offer(answer(n))
    assert sampler.queue.qsize() == 2 and skipped() - before == 3


def test_answers_outside_the_sample_are_not_queued() -> None:
    sampler = _Perplexity(make_scorer=lambda: None, rate=0.0, queue=asyncio.Queue(2))  # type: ignore[arg-type,return-value]
    sampler.offer(answer(1))
    assert sampler.queue.qsize() == 0
