"""A canary whose generation fails is rolled back automatically, with the reason recorded.

A tenant's canary is registered with an adapter no agent can load (an artifact in a store this host
does not read), as a broken adapter would be. Its conversations go through the real agent worker and
fail; the incumbent's answers are scripted (no model generates in this test). The agent records the
version that tried to answer on each failed task, and the eval worker (its periodic sweep: a failing
canary produces no answer to trigger a judgement) counts those failures as the canary's errors and
rolls it back, announcing it on `model.updated` through the outbox.
"""

from __future__ import annotations

from pathlib import Path

from models.registry import in_canary
from schemas.events import ChatRequest, ChatTurn
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.runtime import Runtime
from tests.integration.test_eval_canary import POLICY, answered, eval_settings, register_canary, response  # noqa: F401 — fixture
from tests.support import eventually, read_topic


def canary_conversations(version: str, n: int) -> list[str]:
    """`n` conversation ids the stable hash sends to the canary."""
    found = (f"conv-{i}" for i in range(10_000))
    return [c for c in found if in_canary(version, c, POLICY.share)][:n]


async def test_a_canary_whose_generation_fails_is_rolled_back_with_the_reason(eval_settings: Settings, unique: str,  # noqa: F811
                                                                               tmp_path: Path) -> None:
    settings = eval_settings.model_copy(update={"workers": eval_settings.workers.model_copy(update={"max_retries": 0})})
    tenant = f"broken{unique}"
    runtime = Runtime(settings, ["agent", "eval"])
    await runtime.start(warm=False)
    try:
        incumbent, canary = register_canary(runtime, tenant, "dead")
        runtime.stores.registry.register_version(ModelVersionRecord.model_validate(
            {**runtime.stores.registry.get_version(canary).model_dump(), "artifact_uri": f"s3://nowhere/adapters/{canary}"}))  # type: ignore[union-attr]
        await answered([runtime], [response(n, tenant, incumbent, lambda ref: ref) for n in range(8)])
        requests = [ChatRequest(tenant=tenant, conversation_id=c, messages=[ChatTurn(role="user", content="Who wrote Hamlet?")])
                    for c in canary_conversations(canary, POLICY.min_samples_to_abort)]
        for request in requests:
            await runtime.publisher.publish(request)
        await eventually(lambda: all((t := runtime.stores.tasks.get_task(r.task_id)) is not None and t.status == "failed" for r in requests),
                         what="the canary's tasks failed")
        failed = [runtime.stores.tasks.get_task(r.task_id) for r in requests]
        await eventually(lambda: runtime.stores.registry.get_version(canary).state == "rolled_back",  # type: ignore[union-attr]
                         what="the failing canary rolled back")
        await eventually(lambda: any(e["version"] == canary and e["state"] == "rolled_back"
                                     for e in read_topic(settings, runtime.broker, "model.updated")), what="model.updated published")
    finally:
        await runtime.stop()

    assert {t.model_version for t in failed if t is not None} == {canary}
    decision = next(d for d in runtime.stores.registry.decisions() if d.version == canary and d.action == "rollback")
    assert decision.actor == "auto:canary"
    assert f"error share rose from 0% to 100% ({POLICY.min_samples_to_abort} of {POLICY.min_samples_to_abort} canary answers" in decision.reason
    assert runtime.stores.registry.get_version(incumbent).state == "active"  # type: ignore[union-attr]
