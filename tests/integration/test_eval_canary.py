"""The eval worker judges a tenant's canary on the embedded runtime, from scripted answers.

Two versions are registered as the trainer would leave them: the shared base model active, and a
tenant's adapter in canary. Scripted `chat.responses` (chosen answers with references) for both
go through the real eval worker: a canary whose answers are clearly worse is rolled back by
`auto:canary` with the numbers recorded and `model.updated` published, even with two eval workers
judging at once; a canary as good as the incumbent is promoted; a canary down-voted by its users
is rolled back on down-votes alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from models.registry import base_version
from schemas.events import ChatRequest, ChatResponse, ChatTurn, FeedbackEvent
from schemas.settings import Settings
from schemas.tables import FeedbackRecord, ModelVersionRecord
from streams.runtime import Runtime
from streams.tasks import task_from_request
from tests.support import eventually, read_topic
from trainers.policy import CanaryPolicy, LearningPolicy

POLICY = CanaryPolicy(share=0.5, min_samples=6, min_samples_to_abort=4, metrics=["token_f1"], max_drop=0.2,
                      max_downvote_increase=0.3, max_error_increase=0.2, alpha=0.05)
FACTS = [("What is the capital of France?", "Paris"), ("Who wrote Hamlet?", "William Shakespeare"),
         ("What is the largest planet?", "Jupiter"), ("What gas do plants absorb?", "carbon dioxide")]


@pytest.fixture
def eval_settings(settings: Settings, tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(LearningPolicy(canary=POLICY).to_yaml())
    return settings.model_copy(update={"training": settings.training.model_copy(update={"policy": policy}),
                                       "eval": settings.eval.model_copy(update={"perplexity_rate": 0.0})})


@asynccontextmanager
async def eval_worker(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime(settings, ["eval"])
    await runtime.start(warm=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


def register_canary(runtime: Runtime, tenant: str, name: str) -> tuple[str, str]:
    family = runtime.settings.llm.model_family
    version = f"{family}@lora-{name:0>12}"
    runtime.stores.registry.register_candidate(ModelVersionRecord(version=version, family=family, tenant=tenant, state="candidate"),
                                               actor="auto:gate", reason="trained")
    runtime.stores.registry.start_canary(version, share=POLICY.share, actor="auto:gate", reason="gate passed")
    return base_version(family), version


def response(n: int, tenant: str, version: str, answer_of: Callable[[str], str]) -> ChatResponse:
    question, reference = FACTS[n % len(FACTS)]
    return ChatResponse(event_id=f"{tenant}-{version}-{n}.response", tenant=tenant, task_id=f"t-{tenant}-{n}-{version[-6:]}",
                        conversation_id=f"c-{n}", question=question, answer=answer_of(reference), model_version=version,
                        reference=reference, timings_ms={"generate": 10.0})


async def answered(runtimes: list[Runtime], responses: list[ChatResponse]) -> None:
    """Publish to every runtime (two eval workers see the same traffic) and wait until each answer is scored."""
    for r in responses:
        for runtime in runtimes:
            await runtime.publisher.publish(r)
    evals = runtimes[0].stores.evals
    await eventually(lambda: all(evals.get(r.task_id) is not None for r in responses), what="answers scored")


def auto_decisions(runtime: Runtime, version: str) -> list[str]:
    return [d.action for d in runtime.stores.registry.decisions() if d.version == version and d.actor == "auto:canary"]


def published_updates(runtimes: list[Runtime], version: str) -> list[dict]:
    """What the judge announced about `version` (the seeding `start_canary` announces the canary itself: left out)."""
    return [e for runtime in runtimes for e in read_topic(runtime.settings, runtime.broker, "model.updated")
            if e["version"] == version and e["state"] != "canary"]


async def test_a_clearly_worse_canary_is_rolled_back_once_with_two_eval_workers(eval_settings: Settings, unique: str) -> None:
    tenant = f"acme{unique}"
    async with eval_worker(eval_settings) as first, eval_worker(eval_settings) as second:
        incumbent, canary = register_canary(first, tenant, "bad")
        await answered([first, second], [response(n, tenant, incumbent, lambda ref: f"{ref}.") for n in range(8)])
        await answered([first, second], [response(n, tenant, canary, lambda ref: "I do not know.") for n in range(POLICY.min_samples_to_abort)])
        await eventually(lambda: first.stores.registry.get_version(canary).state == "rolled_back",  # type: ignore[union-attr]
                         what="the canary rolled back")
        # The answer that arrives after the decision, and a redelivery, change nothing.
        await answered([first, second], [response(0, tenant, canary, lambda ref: "Still wrong.")])
        await eventually(lambda: len(published_updates([first, second], canary)) >= 1, what="model.updated published")
        updates = published_updates([first, second], canary)

    assert auto_decisions(first, canary) == ["rollback"]
    decision = next(d for d in first.stores.registry.decisions() if d.version == canary and d.action == "rollback")
    assert decision.reason.startswith("rolled back: token_f1 fell from 1.00 to 0.00") and "4 canary and 8 incumbent" in decision.reason
    assert decision.numbers["canary.answers"] == 4 and decision.numbers["token_f1.p"] < POLICY.alpha
    assert first.stores.registry.get_version(incumbent).state == "active"  # type: ignore[union-attr]
    assert len(updates) == 1 and updates[0]["state"] == "rolled_back" and updates[0]["version_tenant"] == tenant
    assert updates[0]["reason"] == decision.reason and updates[0]["metrics"]["token_f1.drop"] == pytest.approx(1.0)


async def test_a_canary_as_good_as_the_incumbent_is_promoted_after_min_samples(eval_settings: Settings, unique: str) -> None:
    tenant = f"good{unique}"
    async with eval_worker(eval_settings) as runtime:
        incumbent, canary = register_canary(runtime, tenant, "good")
        await answered([runtime], [response(n, tenant, incumbent, lambda ref: ref) for n in range(6)])
        await answered([runtime], [response(n, tenant, canary, lambda ref: ref) for n in range(POLICY.min_samples - 1)])
        assert runtime.stores.registry.get_version(canary).state == "canary"  # type: ignore[union-attr]  # one short of min_samples
        await answered([runtime], [response(POLICY.min_samples, tenant, canary, lambda ref: ref)])
        await eventually(lambda: runtime.stores.registry.get_version(canary).state == "active", what="the canary promoted")  # type: ignore[union-attr]
        await eventually(lambda: len(published_updates([runtime], canary)) == 1, what="model.updated published")
        windows = {(w.tenant, w.metric): w for w in runtime.stores.evals.windows(canary)}

    assert auto_decisions(runtime, canary) == ["promote"]
    update = published_updates([runtime], canary)[0]
    assert update["state"] == "active" and update["reason"].startswith("promoted: no significant drop in token_f1, down-votes, errors")
    assert (windows[(tenant, "token_f1")].count, windows[(tenant, "token_f1")].mean) == (6, 1.0)
    assert windows[("*", "error")].mean == 0.0


async def test_a_down_voted_canary_is_rolled_back_on_down_votes(eval_settings: Settings, unique: str) -> None:
    """No references: the quality metric cannot tell, the users' down-votes can."""
    tenant = f"vote{unique}"
    async with eval_worker(eval_settings) as runtime:
        incumbent, canary = register_canary(runtime, tenant, "voted")
        plain = [r.model_copy(update={"reference": None}) for r in [response(n, tenant, incumbent, lambda ref: ref) for n in range(6)]]
        await answered([runtime], plain)
        bad = [r.model_copy(update={"reference": None}) for r in [response(n, tenant, canary, lambda ref: ref) for n in range(5)]]
        await answered([runtime], bad[:3])
        for r in bad[:3]:
            await runtime.publisher.publish(FeedbackEvent(tenant=tenant, task_id=r.task_id, rating="down"))
        await eventually(lambda: all(runtime.stores.evals.get(r.task_id).metrics.get("downvote") == 1.0 for r in bad[:3]),  # type: ignore[union-attr]
                         what="down-votes counted")
        assert runtime.stores.registry.get_version(canary).state == "canary"  # type: ignore[union-attr]  # 3 < min_samples_to_abort
        await answered([runtime], bad[3:])
        await eventually(lambda: runtime.stores.registry.get_version(canary).state == "rolled_back", what="rolled back")  # type: ignore[union-attr]

    decision = next(d for d in runtime.stores.registry.decisions() if d.version == canary and d.action == "rollback")
    assert "downvote share rose from 0% to " in decision.reason and decision.actor == "auto:canary"


async def test_an_automatic_promotion_announces_the_incumbent_it_retired(eval_settings: Settings, unique: str) -> None:
    """The tenant's own active adapter is retired by the promotion: agents hear of both moves, from one builder."""
    tenant = f"line{unique}"
    async with eval_worker(eval_settings) as runtime:
        registry, family = runtime.stores.registry, runtime.settings.llm.model_family
        old = f"{family}@lora-{'01d':0>12}"
        registry.register_candidate(ModelVersionRecord(version=old, family=family, tenant=tenant, state="candidate"), actor="t", reason="t")
        registry.promote(old, actor="t", reason="the tenant's first adapter")
        _, canary = register_canary(runtime, tenant, "2ee")
        await answered([runtime], [response(n, tenant, old, lambda ref: ref) for n in range(6)])
        await answered([runtime], [response(n, tenant, canary, lambda ref: ref) for n in range(POLICY.min_samples)])
        await eventually(lambda: registry.get_version(canary).state == "active", what="the canary promoted")  # type: ignore[union-attr]
        retirements = lambda: [e for e in published_updates([runtime], old) if e["state"] == "retired"]  # noqa: E731
        await eventually(lambda: len(retirements()) == 1, what="the retirement announced")  # (the seeding promotion announced `active`)
        retired, promoted = retirements()[0], published_updates([runtime], canary)[0]
    assert (retired["state"], retired["version_tenant"], retired["reason"]) == ("retired", tenant, promoted["reason"])
    assert promoted["state"] == "active"


async def test_a_canary_that_learned_its_corrections_but_broke_other_questions_is_rolled_back(eval_settings: Settings,
                                                                                               unique: str) -> None:
    """Judged on one mean, the taught questions' gain (0 -> 1) outweighs the loss on the others (1 -> 0) and the canary
    is promoted; the eval worker tells them apart by the tenant's corrections (real tasks and feedback rows) and rolls back."""
    tenant = f"forget{unique}"
    taught, other = FACTS[:2], FACTS[2:]
    async with eval_worker(eval_settings) as runtime:
        incumbent, canary = register_canary(runtime, tenant, "4f0")
        for n, (question, reference) in enumerate(taught):  # the tenant corrected these questions' answers
            request = ChatRequest(task_id=f"asked-{tenant}-{n}", tenant=tenant, messages=[ChatTurn(role="user", content=question)])
            runtime.stores.tasks.create_task(task_from_request(request))
            runtime.stores.feedback.add_feedback(FeedbackRecord(id=f"fb-{tenant}-{n}", task_id=request.task_id, tenant=tenant,
                                                                rating="down", correction=reference))

        def traffic(version: str, right_on: list[tuple[str, str]], count: int) -> list[ChatResponse]:
            made = []
            for n in range(count):
                question, reference = (taught + other)[n % 4]
                request = ChatRequest(task_id=f"t-{tenant}-{n}-{version[-6:]}", tenant=tenant, conversation_id=f"c-{n}",
                                      messages=[ChatTurn(role="user", content=f"  {question.upper()} ")])  # asked again, differently cased
                runtime.stores.tasks.create_task(task_from_request(request))
                answer = reference if (question, reference) in right_on else "I do not know."
                made.append(ChatResponse(event_id=f"{request.task_id}.response", tenant=tenant, task_id=request.task_id,
                                         conversation_id=request.conversation_id, question=question, answer=answer,
                                         model_version=version, reference=reference, timings_ms={"generate": 10.0}))
            return made

        await answered([runtime], traffic(incumbent, other, 8))
        await answered([runtime], traffic(canary, taught, POLICY.min_samples + 2))
        await eventually(lambda: runtime.stores.registry.get_version(canary).state != "canary", what="the canary judged")  # type: ignore[union-attr]

    assert auto_decisions(runtime, canary) == ["rollback"]
    decision = next(d for d in runtime.stores.registry.decisions() if d.version == canary and d.action == "rollback")
    assert "on untaught questions, token_f1 fell from 1.00 to 0.00" in decision.reason
    assert decision.numbers["taught.canary.answers"] >= POLICY.min_samples_to_abort
    assert decision.numbers["taught.canary.token_f1.mean"] == 1.0 and decision.numbers["untaught.canary.token_f1.mean"] == 0.0
