"""`GET /v1/training-runs` and the feedback side of the learning loop, without a model: the feedback
worker records every policy decision with its inputs and asks for training when the policy says so;
bad corrections get a 422 with the reason; each tenant sees only its own runs and decisions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from schemas.events import ChatRequest, ChatTurn, FeedbackEvent
from schemas.settings import Settings
from schemas.tables import TrainingDecisionRecord, TrainingRunRecord
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from streams.task_attempts import TaskAttempts
from streams.task_store import task_from_request
from tests.support import eventually, outcome_of, read_topic
from trainers.training_store import TrainingStore

A, B = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.override(auth="on", api_keys=SecretStr("key-a=tenantA, key-b=tenantB"), feedback_min_corrections=2)


@contextmanager
def gateway(settings: Settings, *roles: str) -> Iterator[tuple[httpx.Client, Runtime]]:
    runtime = Runtime(settings, list(roles))
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, runtime


def answered_task(runtime: Runtime, tenant: str, question: str) -> str:
    request = ChatRequest(tenant=tenant, messages=[ChatTurn(role="user", content=question)])
    runtime.stores.tasks.create_task(task_from_request(request))
    attempts = TaskAttempts(runtime.stores.db)
    attempt = attempts.claim(request.task_id, "agent", 60.0)
    assert attempt is not None and attempts.finish(request.task_id, attempt, "agent", to="succeeded", result=outcome_of(request, "no idea"))
    return request.task_id


def listing(client: httpx.Client, headers: dict[str, str], **params: str) -> dict[str, Any]:
    reply = client.get("/v1/training-runs", headers=headers, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_key_sees_only_its_own_tenants_training_runs_and_decisions(keyed: Settings, unique: str) -> None:
    with gateway(keyed) as (client, runtime):
        store = TrainingStore(runtime.stores.db)
        for tenant in ("tenantA", "tenantB"):
            store.start_run(TrainingRunRecord(id=f"run-{tenant}-{unique}", tenant=tenant, family="smollm2", recipe="lora-peft", state="running"))
            store.record_decision(TrainingDecisionRecord(id=f"fb-{tenant}-{unique}", tenant=tenant, family="smollm2", train=True,
                                                         reason="test", inputs={"corrections": 3}))
        mine = listing(client, A)
        assert mine["tenant"] == "tenantA"
        assert {r["id"] for r in mine["runs"]} >= {f"run-tenantA-{unique}"} and all(r["tenant"] == "tenantA" for r in mine["runs"])
        assert {d["id"] for d in mine["decisions"]} >= {f"fb-tenantA-{unique}"}
        theirs = listing(client, B, tenant="tenantA")  # the key decides, not the query
        assert f"run-tenantA-{unique}" not in {r["id"] for r in theirs["runs"]} and all(r["tenant"] == "tenantB" for r in theirs["runs"])
        assert all(d["tenant"] == "tenantB" for d in theirs["decisions"])
        assert client.get("/v1/training-runs").status_code == 401


def test_empty_and_overlong_corrections_are_refused_with_the_reason(keyed: Settings) -> None:
    with gateway(keyed) as (client, runtime):
        task_id = answered_task(runtime, "tenantA", "Capital of Zorblax?")
        for correction, reason in [("   ", "empty correction"), ("x" * 2001, "longer than the limit of 2000")]:
            reply = client.post("/v1/feedback", headers=A, json={"task_id": task_id, "rating": "down", "correction": correction})
            assert reply.status_code == 422 and reason in reply.text, reply.text
        assert client.post("/v1/feedback", headers=B, json={"task_id": task_id, "rating": "up"}).status_code == 404


async def test_the_feedback_worker_records_each_decision_and_asks_for_training_when_the_policy_says_so(keyed: Settings) -> None:
    """min corrections 2 (RAGLOOP_FEEDBACK_MIN_CORRECTIONS over the policy's 20): a repeat of the first correction folds and
    does not count, the second distinct one trains; tenant B's corrections never count for tenant A."""
    with gateway(keyed, "feedback") as (client, runtime):
        tasks = [answered_task(runtime, "tenantA", q) for q in ("Capital of Zorblax?", "capital of zorblax", "Who runs Plinth?")]
        other = answered_task(runtime, "tenantB", "Who runs Plinth?")
        sent = []
        for headers, task_id, correction in [(A, tasks[0], "Quenvale."), (B, other, "Marrow."), (A, tasks[1], "Quenvale"),
                                             (A, tasks[2], "Marrow Point.")]:
            reply = client.post("/v1/feedback", headers=headers, json={"task_id": task_id, "rating": "down", "correction": correction})
            assert reply.status_code == 202, reply.text
            sent.append(reply.json()["feedback_id"])
            await eventually(lambda h=headers: any(d["id"] == sent[-1] for d in listing(client, h)["decisions"]), what="the decision")
        decisions = {d["id"]: d for d in listing(client, A)["decisions"]}
        assert [decisions[i]["train"] for i in (sent[0], sent[2], sent[3])] == [False, False, True]
        assert (decisions[sent[2]]["inputs"]["corrections"], decisions[sent[2]]["inputs"]["folded"]) == (1, 1)
        assert decisions[sent[2]]["inputs"]["dropped"] == {sent[0]: f"folded into {sent[2]}: the same question corrected alike"}
        assert "2 corrections" in decisions[sent[3]]["reason"] and decisions[sent[3]]["train_request_id"] == sent[3]
        requests = read_topic(runtime.settings, runtime.broker, "train.requests")
        assert [(r["event_id"], r["tenant"]) for r in requests] == [(sent[3], "tenantA")]


async def test_feedback_on_another_tenants_task_is_dead_lettered_by_the_worker_too(keyed: Settings) -> None:
    """The API answers 404; an event that names another tenant's task anyway (a replay, another producer) is refused for good."""
    with gateway(keyed, "feedback") as (_, runtime):
        task_id = answered_task(runtime, "tenantA", "Capital of Zorblax?")
        await runtime.publisher.publish(FeedbackEvent(tenant="tenantB", task_id=task_id, rating="down", correction="forged"))

        def dead() -> list[dict[str, Any]]:
            return read_topic(runtime.settings, runtime.broker, "feedback.events.dlq")

        await eventually(lambda: bool(dead()), what="the forged feedback on feedback.events.dlq")
        assert "unknown task_id" in dead()[0]["reason"]
        assert runtime.stores.feedback.get_feedback(dead()[0].get("event_id", "")) is None
