"""Eval role: scores every answer (`chat.responses`), re-scores it when a correction arrives, counts
its down-votes, keeps each version's window, and judges a tenant's canary after each of its answers.

Per answer: `score_answer` (reference metrics, BLEU, context overlap, answer relevance with the
process's embedder, citation validity) → the eval row (tenant, version, answer time) → `eval.results`
→ the version's windows (`version_windows`, `/metrics`) → when the answer's tenant has a canary,
`canary_judge.judge` on canary vs active over the answers since the canary started → promote or
roll back (actor `auto:canary`, reason and numbers recorded) → `model.updated` through the outbox, for
the canary and for the incumbent it retired. Failed tasks count as errors of the version that tried
to answer them, and a background sweep judges every canary every `CANARY_SWEEP_S` seconds as well,
so a canary whose every request fails (no answer to trigger a judgement) is still rolled back.

Perplexity is sampled (`RAGLOOP_EVAL_PERPLEXITY_RATE`, a stable hash of the task) and computed by a
background loop on its own thread, never on the consumer's path: when more than
`RAGLOOP_EVAL_PERPLEXITY_MAX_PENDING` sampled answers wait, new ones are skipped and counted
(`ragloop_eval_perplexity_skipped_total`), so a slow model can never make scoring fall behind.

Two eval workers may judge the same canary at once: the registry's state check lets one transition
win and raises `InvalidTransition` for the other, which then does nothing (the winner publishes).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from evaluation.canary_judge import judge
from evaluation.perplexity import PerplexityScorer, sampled
from evaluation.question_groups import grouped_windows
from evaluation.scoring import score_answer
from evaluation.windows import ERROR, VersionWindow
from models.registry import InvalidTransition
from schemas.events import ChatResponse, EvalResult, FeedbackEvent, utcnow
from schemas.tables import EvalRecord, VersionWindowRecord
from streams.consumer import EventConsumer
from streams.metrics import (
    CANARY_DECISIONS,
    EVAL_ERRORS,
    EVAL_LAG,
    EVAL_LAST_SCORED,
    EVAL_METRIC,
    EVAL_PERPLEXITY_SKIPPED,
    EVAL_WINDOW,
)
from streams.outbox_relay import Outbox
from streams.publisher import Publisher
from streams.services import Services
from streams.supervision import BackgroundLoop
from streams.topics import TOPICS
from trainers.policy import DEFAULT_POLICY, LearningPolicy

if TYPE_CHECKING:
    from models.embedder import TextEmbedder

GROUP = "ragloop.eval"
ALL_TENANTS = "*"
CANARY_SWEEP_S = 5.0  # every canary is also judged this often, without waiting for an answer (see `background`)
MAX_EXPORTED_VERSIONS = 16  # /metrics shows the windows of this many most recently scored versions (label cardinality)
NOT_IN_HISTOGRAM = frozenset({"latency_ms", "answer_tokens", "perplexity", ERROR, "downvote"})  # not [0, 1] quality scores
log = structlog.get_logger(__name__)


@dataclass
class _Perplexity:
    """The sampled answers waiting for their perplexity, and the one thread that computes them."""

    make_scorer: Callable[[], PerplexityScorer]  # called on the sampler's thread: the base model loads there, not at start
    rate: float
    queue: asyncio.Queue[tuple[str, str, str]]
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="eval-perplexity"))
    _scorer: PerplexityScorer | None = None

    def score(self, question: str, answer: str) -> float | None:
        if self._scorer is None:
            self._scorer = self.make_scorer()
        return self._scorer.score(question, answer)

    def offer(self, response: ChatResponse) -> None:
        if self.rate <= 0 or not sampled(response.task_id, self.rate):
            return
        try:
            self.queue.put_nowait((response.task_id, response.question, response.answer))
        except asyncio.QueueFull:
            EVAL_PERPLEXITY_SKIPPED.inc()


_PERPLEXITY: weakref.WeakKeyDictionary[Services, _Perplexity] = weakref.WeakKeyDictionary()


def _perplexity(services: Services) -> _Perplexity:
    """One sampler per process's services, shared by the consumers and the background loop."""
    if services not in _PERPLEXITY:
        settings = services.settings.eval
        _PERPLEXITY[services] = _Perplexity(lambda: PerplexityScorer(services.base_model_path, max_tokens=settings.perplexity_max_tokens),
                                            settings.perplexity_rate, asyncio.Queue(settings.perplexity_max_pending))
    return _PERPLEXITY[services]


def background(services: Services, publisher: Publisher) -> list[BackgroundLoop]:
    sampler = _perplexity(services)
    evals = services.stores.evals

    async def eval_perplexity() -> None:
        loop = asyncio.get_running_loop()
        while True:
            task_id, question, answer = await sampler.queue.get()
            try:
                value = await loop.run_in_executor(sampler.executor, sampler.score, question, answer)
                if value is not None:
                    await asyncio.to_thread(evals.add_metrics, task_id, {"perplexity": value})
            except Exception as error:  # noqa: BLE001 — one answer's perplexity must not stop the others'
                EVAL_ERRORS.labels("perplexity").inc()
                log.warning("perplexity failed", task_id=task_id, error=repr(error))

    policy = LearningPolicy.from_yaml(services.settings.training.policy or DEFAULT_POLICY)
    judge_canary, registry = canary_judge(services, publisher, policy), services.stores.registry

    async def judge_canaries() -> None:
        """Every canary, every CANARY_SWEEP_S, answers or not: a canary whose every request fails produces no
        answer to be scored, so nothing else would ever judge it (its failed tasks count as errors)."""
        while True:
            await asyncio.sleep(CANARY_SWEEP_S)
            rows = await asyncio.to_thread(registry.list_versions, services.settings.llm.model_family)
            for tenant in sorted({r.tenant for r in rows if r.state == "canary" and r.tenant is not None}):
                try:
                    await judge_canary(tenant)
                except Exception as error:  # noqa: BLE001 — one line's judgement must not stop the others'
                    EVAL_ERRORS.labels("judge").inc()
                    log.warning("canary sweep failed", tenant=tenant, error=repr(error))

    return [judge_canaries, eval_perplexity] if sampler.rate > 0 else [judge_canaries]


def canary_judge(services: Services, publisher: Publisher, policy: LearningPolicy) -> Callable[[str], Awaitable[None]]:
    """`judge(tenant)`: judge the tenant's canary on canary vs active answers (and failed tasks) since it started; on a
    verdict, move it (actor `auto:canary`); the registry writes `model.updated` for every version the move changed (the
    canary, and the incumbent it retired or that serves again) into the outbox in the move's own transaction, so the
    announcement is durable with the move; it is sent now, or by the relay if the broker is down."""
    evals, registry, family = services.stores.evals, services.stores.registry, services.settings.llm.model_family
    outbox = Outbox(services.stores.db, publisher, services.settings)

    async def judge_canary(tenant: str) -> None:
        serving = await asyncio.to_thread(registry.serving, family, tenant)
        canary = serving.canary
        if canary is None:
            return
        decisions = await asyncio.to_thread(registry.decisions, canary.family, tenant, every_tenant=False)
        since = max((d.at for d in decisions if d.version == canary.version and d.action == "canary"),
                    default=canary.updated_at or canary.created_at)

        def windows(version: str, taught: set[str]) -> tuple[VersionWindow, dict[str, VersionWindow]]:
            rows = evals.rows_with_questions(version, tenant, since=since)
            whole = VersionWindow.of(version, (metrics for _, metrics in rows), failed_tasks=evals.failed_tasks(version, tenant, since))
            return whole, grouped_windows(version, rows, taught)

        taught = await asyncio.to_thread(evals.corrected_questions, tenant)
        (canary_window, canary_groups), (incumbent_window, incumbent_groups) = await asyncio.gather(
            asyncio.to_thread(windows, canary.version, taught), asyncio.to_thread(windows, serving.active.version, taught))
        verdict = judge(canary_window, incumbent_window, policy.canary,
                        groups={name: (canary_groups[name], incumbent_groups[name]) for name in canary_groups})
        if verdict.action == "wait":
            return
        move = registry.promote if verdict.action == "promote" else registry.rollback
        try:
            await asyncio.to_thread(move, canary.version, actor="auto:canary", reason=verdict.reason, numbers=verdict.numbers,
                                    caused_by=tenant)
        except InvalidTransition:
            log.info("canary already decided elsewhere", version=canary.version, action=verdict.action)
            return
        CANARY_DECISIONS.labels(verdict.action).inc()
        log.info("canary decided", version=canary.version, tenant=tenant, action=verdict.action, reason=verdict.reason)
        await outbox.deliver_now()  # the move wrote its model.updated (canary, and what it retired or restored) in its transaction

    return judge_canary


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    evals, tasks, settings = services.stores.evals, services.stores.tasks, services.settings
    policy = LearningPolicy.from_yaml(settings.training.policy or DEFAULT_POLICY)
    log.info("eval worker: the learning policy's canary part decides here", policy=policy.canary.model_dump(),
             perplexity_rate=settings.eval.perplexity_rate, window=settings.eval.window)
    sampler = _perplexity(services)
    judge_canary = canary_judge(services, publisher, policy)
    exported: OrderedDict[str, set[tuple[str, str]]] = OrderedDict()

    def embedder() -> TextEmbedder:
        services.warm("embedder")  # built once, under the services' lock
        return services.embedder

    async def record(response: ChatResponse, reference: str | None, event_id: str, rating: str | None = None) -> None:
        latency = sum(response.timings_ms.values())
        try:
            scores = await asyncio.to_thread(lambda: score_answer(
                answer=response.answer, contexts=[c.text for c in response.citations], reference=reference, latency_ms=latency,
                question=response.question, embedder=embedder()))
        except Exception:
            EVAL_ERRORS.labels("score").inc()
            raise
        metrics: dict[str, float | None] = {**scores.model_dump(), ERROR: float(not response.answer.strip())}
        if rating is not None:
            metrics["downvote"] = float(rating == "down")
        await asyncio.to_thread(evals.save_eval, EvalRecord(task_id=response.task_id, model_version=response.model_version,
                                                            tenant=response.tenant, metrics=metrics, created_at=response.occurred_at))
        for name, value in metrics.items():
            if value is not None and name not in NOT_IN_HISTOGRAM:
                EVAL_METRIC.labels(name).observe(value)
        EVAL_LAG.set(max(0.0, (utcnow() - response.occurred_at).total_seconds()))
        EVAL_LAST_SCORED.set(time.time())
        await publisher.publish(EvalResult(event_id=event_id, tenant=response.tenant, task_id=response.task_id,
                                           model_version=response.model_version, metrics=metrics, trace=response.trace))
        sampler.offer(response)

    async def after_scoring(version: str, tenant: str) -> None:
        try:
            await asyncio.to_thread(update_windows, version, tenant)
        except Exception as error:  # noqa: BLE001 — the next answer refreshes them; the judge below still runs
            EVAL_ERRORS.labels("windows").inc()
            log.warning("eval windows not updated", version=version, error=repr(error))
        try:
            await judge_canary(tenant)
        except Exception:
            EVAL_ERRORS.labels("judge").inc()
            raise

    def update_windows(version: str, tenant: str) -> None:
        rows: list[VersionWindowRecord] = []
        for scope in (tenant, None):
            window = VersionWindow.of(version, evals.rows(version, scope, limit=settings.eval.window))
            summaries = window.summaries()
            rows += [VersionWindowRecord(version=version, tenant=scope or ALL_TENANTS, metric=metric, count=s.count, mean=s.mean,
                                         ci_low=s.ci_low, ci_high=s.ci_high) for metric, s in summaries.items()]
            if scope is None:
                export(version, {metric: s.model_dump(include={"count", "mean", "ci_low", "ci_high"}) for metric, s in summaries.items()})
        evals.save_windows(rows)

    def export(version: str, summaries: dict[str, dict[str, float]]) -> None:
        labels = exported.setdefault(version, set())
        exported.move_to_end(version)
        for metric, stats in summaries.items():
            for stat, value in stats.items():
                EVAL_WINDOW.labels(version, metric, stat).set(value)
                labels.add((metric, stat))
        while len(exported) > MAX_EXPORTED_VERSIONS:
            old, old_labels = exported.popitem(last=False)
            for metric, stat in old_labels:
                EVAL_WINDOW.remove(old, metric, stat)

    async def on_response(response: ChatResponse) -> None:
        await record(response, response.reference, f"{response.task_id}.eval")
        await after_scoring(response.model_version, response.tenant)

    async def on_feedback(feedback: FeedbackEvent) -> None:
        """A correction re-scores the answer against it; any rating sets the answer's down-vote flag."""
        if feedback.correction is None:
            row = await asyncio.to_thread(evals.add_metrics, feedback.task_id, {"downvote": float(feedback.rating == "down")})
            if row is not None:
                await after_scoring(row.model_version, row.tenant or feedback.tenant)
                return
        task = await asyncio.to_thread(tasks.get_task, feedback.task_id)
        if task is None or not task.result:
            return
        response: ChatResponse = task.result.response
        if feedback.correction is None:  # rated before its answer was scored: score it now, with the rating
            await record(response, response.reference, f"{response.task_id}.eval", feedback.rating)
        else:
            await record(response, feedback.correction, f"{feedback.task_id}.eval.{feedback.event_id}", feedback.rating)
        await after_scoring(response.model_version, response.tenant)

    return [
        EventConsumer(TOPICS["chat.responses"], GROUP, on_response),
        EventConsumer(TOPICS["feedback.events"], GROUP, on_feedback),
    ]
