"""The chat task-queue contract, on real Kafka and on the embedded broker: every state
transition, SSE order, idempotency, back-pressure, priorities, retries and the visibility timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.e2e.conftest import processes
from streams.gateway.server import serve_in_thread
from tests.support import read_topic

LONG = "Write a long, detailed story about a lighthouse keeper and the sea, with many characters."


@pytest.fixture(params=["embedded", "kafka"])
def queue_settings(request: pytest.FixtureRequest, settings: Settings, unique: str) -> Settings:
    update = {"max_new_tokens": 16, "task_lease_s": 3.0, "worker_retry_backoff_s": 1.0}
    if request.param == "kafka":
        update |= {"broker_url": request.getfixturevalue("kafka_url"), "topic_prefix": f"q{unique}.", "auth": "off"}
    return settings.model_copy(update=update)


@pytest.fixture
def kafka_settings(settings: Settings, unique: str, kafka_url: str) -> Settings:
    return settings.model_copy(update={"max_new_tokens": 16, "task_lease_s": 3.0, "worker_retry_backoff_s": 1.0,
                                       "broker_url": kafka_url, "topic_prefix": f"q{unique}.", "auth": "off"})


@contextmanager
def gateway(settings: Settings, roles: tuple[str, ...] = ("agent",)) -> Iterator[tuple[httpx.Client, Runtime]]:
    runtime = Runtime(settings, list(roles))
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=300) as client:
        yield client, runtime


def submit(client: httpx.Client, question: str = "What is the capital of France?", *, expect: int = 202, headers: dict | None = None, **options) -> dict:
    reply = client.post("/v1/chat", json={"messages": [{"role": "user", "content": question}], **options}, headers=headers or {})
    assert reply.status_code == expect, reply.text
    return reply.json()


def wait_for(client: httpx.Client, task_id: str, statuses: set[str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in statuses:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} not in {statuses} after {timeout}s: {task}")


def sse_events(client: httpx.Client, path: str) -> Iterator[tuple[str, dict]]:
    with client.stream("GET", path) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        event, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
            elif line == "" and data:
                yield event, json.loads(data)
                event, data = "message", ""


def test_task_goes_queued_running_succeeded_and_sse_streams_it_in_order(queue_settings: Settings) -> None:
    with gateway(queue_settings) as (client, _):
        task = submit(client)
        events = list(sse_events(client, f"/v1/tasks/{task['task_id']}/events"))
    kinds = [kind for kind, _ in events]
    statuses = [data["status"] for kind, data in events if kind == "status"]
    assert statuses[-2:] == ["running", "succeeded"] and statuses[0] in ("queued", "running")
    tokens = [data for kind, data in events if kind == "token"]
    assert [t["index"] for t in tokens] == list(range(len(tokens))) and tokens
    assert kinds.index("token") > kinds.index("status") and kinds[-1] == "result"
    result = events[-1][1]["result"]
    assert "".join(t["delta"] for t in tokens).strip() == result["answer"]
    assert events[-1][1]["status"] == "succeeded"


def test_cancelled_queued_task_never_runs(queue_settings: Settings) -> None:
    with gateway(queue_settings) as (client, _):
        busy = submit(client, LONG, max_new_tokens=400)
        wait_for(client, busy["task_id"], {"running"})
        waiting = submit(client)
        cancelled = client.delete(f"/v1/tasks/{waiting['task_id']}").json()
        assert cancelled["status"] == "cancelled"
        client.delete(f"/v1/tasks/{busy['task_id']}")
        after = submit(client)  # the agent moves past the cancelled task to this one
        wait_for(client, after["task_id"], {"succeeded"})
        final = client.get(f"/v1/tasks/{waiting['task_id']}").json()
    assert final["status"] == "cancelled" and final["attempts"] == 0 and final["started_at"] is None


def test_cancelling_a_running_task_stops_generation(queue_settings: Settings) -> None:
    with gateway(queue_settings) as (client, _):
        task = submit(client, LONG, max_new_tokens=400)
        tokens = 0
        for kind, _ in sse_events(client, f"/v1/tasks/{task['task_id']}/events"):
            if kind == "token":
                tokens += 1
                if tokens == 3:
                    assert client.delete(f"/v1/tasks/{task['task_id']}").json()["status"] == "cancelled"
        final = wait_for(client, task["task_id"], {"cancelled", "succeeded"})
        assert final["status"] == "cancelled" and final["result"] is None
        started = time.monotonic()
        next_task = submit(client)
        wait_for(client, next_task["task_id"], {"succeeded"})
    assert time.monotonic() - started < 60  # the agent was freed, not busy finishing 400 tokens


def _random_adapter(settings: Settings, path: Path) -> None:
    """A real PEFT LoRA adapter with untrained (zero) B matrices: answers as the base model does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from models.fetch import ensure_smollm2

    model = AutoModelForCausalLM.from_pretrained(ensure_smollm2(settings.model_cache))
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(path)


def test_failed_attempts_are_retried_then_succeed(queue_settings: Settings, tmp_path: Path) -> None:
    adapter = tmp_path / "late-adapter"
    with gateway(queue_settings) as (client, runtime):
        runtime.store.register_version(ModelVersionRecord(version="v-late", family=queue_settings.model_family, state="candidate",
                                                          adapter_path=str(adapter)))
        task = submit(client, model_version="v-late")
        wait_for(client, task["task_id"], {"running"})
        deadline = time.monotonic() + 60
        while client.get(f"/v1/tasks/{task['task_id']}").json()["attempts"] < 2:  # the first attempt failed: no adapter yet
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _random_adapter(queue_settings, adapter)
        final = wait_for(client, task["task_id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    assert final["attempts"] >= 2 and final["result"]["model_version"] == "v-late"


def test_exhausted_retries_fail_the_task_and_dead_letter_it(queue_settings: Settings, tmp_path: Path) -> None:
    with gateway(queue_settings) as (client, runtime):
        runtime.store.register_version(ModelVersionRecord(version="v-broken", family=queue_settings.model_family, state="candidate",
                                                          adapter_path=str(tmp_path / "missing")))
        task = submit(client, model_version="v-broken")
        final = wait_for(client, task["task_id"], {"failed", "succeeded"}, timeout=120)
        letters = read_topic(queue_settings, runtime.broker, "chat.requests.dlq")
    assert final["status"] == "failed" and "adapter_config.json" in final["error"]
    assert final["attempts"] == queue_settings.worker_max_retries + 1
    assert any(task["task_id"] in letter["payload"] and "adapter_config.json" in letter["reason"] for letter in letters)


def test_idempotency_key_returns_the_same_task(queue_settings: Settings) -> None:
    with gateway(queue_settings, roles=()) as (client, _):
        first = submit(client, headers={"Idempotency-Key": "order-42"})
        again = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "What is the capital of France?"}]},
                            headers={"Idempotency-Key": "order-42"})
        other = submit(client, headers={"Idempotency-Key": "order-43"})
    assert again.status_code == 200 and again.json()["task_id"] == first["task_id"]
    assert other["task_id"] != first["task_id"]


def test_full_queue_answers_503_with_retry_after_and_loses_nothing(queue_settings: Settings) -> None:
    full = queue_settings.model_copy(update={"max_queued_tasks": 1, "queue_full_retry_after_s": 7})
    with gateway(full) as (client, _):
        busy = submit(client, LONG, max_new_tokens=400)
        wait_for(client, busy["task_id"], {"running"})
        waiting = submit(client)
        refused = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "one more?"}]})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
        assert "limit 1" in refused.json()["detail"]
        client.delete(f"/v1/tasks/{busy['task_id']}")
        assert wait_for(client, waiting["task_id"], {"succeeded"})["result"]["answer"]


def test_high_priority_task_overtakes_waiting_normal_ones(queue_settings: Settings) -> None:
    with gateway(queue_settings) as (client, _):
        busy = submit(client, LONG, max_new_tokens=400)
        wait_for(client, busy["task_id"], {"running"})
        normal = [submit(client, f"Name a colour number {n}.", conversation_id=f"c{n}") for n in range(2)]
        time.sleep(1.0)  # both normal tasks are delivered and waiting for the engine
        high = submit(client, "Name a fruit.", priority="high")
        client.delete(f"/v1/tasks/{busy['task_id']}")
        done = {t["task_id"]: wait_for(client, t["task_id"], {"succeeded"}) for t in [*normal, high]}
    assert done[high["task_id"]]["started_at"] < min(done[t["task_id"]]["started_at"] for t in normal)


def test_task_of_a_killed_agent_is_retried_after_its_visibility_timeout(kafka_settings: Settings, tmp_path: Path) -> None:
    env = {"RAGLOOP_HOME": str(kafka_settings.home), "RAGLOOP_BROKER_URL": kafka_settings.broker_url,
           "RAGLOOP_TOPIC_PREFIX": kafka_settings.topic_prefix, "RAGLOOP_TASK_LEASE_S": "3", "RAGLOOP_MAX_NEW_TOKENS": "16"}
    with gateway(kafka_settings, roles=()) as (client, _), processes(env, tmp_path / "logs") as procs:
        procs.start("agent-1", "worker", "agent")
        task = submit(client, LONG, max_new_tokens=400)
        wait_for(client, task["task_id"], {"running"}, timeout=240)
        procs.kill("agent-1")
        procs.start("agent-2", "worker", "agent")
        final = wait_for(client, task["task_id"], {"succeeded", "failed"}, timeout=400)
    assert final["status"] == "succeeded" and final["attempts"] >= 2


def test_metrics_export_queue_depth_lag_and_task_latency(queue_settings: Settings) -> None:
    with gateway(queue_settings) as (client, _):
        wait_for(client, submit(client)["task_id"], {"succeeded"})
        text = client.get("/metrics").text
    assert "ragloop_queue_depth" in text and "ragloop_consumer_lag" in text
    assert 'ragloop_task_seconds_count{status="succeeded"}' in text
