"""The chat task-queue contract, on real Kafka and on the embedded broker: every state
transition, SSE order, idempotency, back-pressure, priorities, retries and the metrics.

Leases (renewal, a killed agent's task taken over) are in `test_leases.py`, which shares the
helpers below. Every wait is on a condition (a task's status, an attempt count, a metric);
nothing waits a fixed time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from tests.support import read_topic, wait_for

LONG = "Write a long, detailed story about a lighthouse keeper and the sea, with many characters."
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(params=["embedded", "kafka"])
def queue_settings(request: pytest.FixtureRequest, settings: Settings, unique: str) -> Settings:
    update: dict[str, object] = {"max_new_tokens": 16, "task_lease_s": 3.0}
    if request.param == "kafka":
        update |= {"broker_url": request.getfixturevalue("kafka_url"), "topic_prefix": f"q{unique}.", "auth": "off"}
    return settings.override(**update)


@contextmanager
def gateway(settings: Settings, roles: tuple[str, ...] = ("agent",)) -> Iterator[tuple[httpx.Client, Runtime]]:
    runtime = Runtime(settings, list(roles))
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=300) as client:
        yield client, runtime


def submit(client: httpx.Client, question: str = "What is the capital of France?", *, expect: int = 202, headers: dict | None = None, **options) -> dict:
    reply = client.post("/v1/chat", json={"messages": [{"role": "user", "content": question}], **options}, headers=headers or {})
    assert reply.status_code == expect, reply.text
    return reply.json()


def wait_status(client: httpx.Client, task_id: str, statuses: set[str], timeout: float = 300) -> dict:
    """The task as soon as it reaches one of `statuses`."""
    def reached() -> dict | None:
        task = client.get(f"/v1/tasks/{task_id}").json()
        return task if task["status"] in statuses else None

    return wait_for(reached, timeout=timeout, interval=0.05, what=f"task {task_id} to be {sorted(statuses)}")


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


def scrape(client: httpx.Client) -> Samples:
    """Every sample `GET /metrics` exports, parsed the way Prometheus reads it."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(client.get("/metrics").text) for sample in family.samples}


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def agent_lag(settings: Settings, samples: Samples) -> float:
    """The agents' backlog as exported: the embedded broker's undelivered messages, or the agent group's lag on `chat.requests`."""
    if settings.broker.is_embedded:
        return sample(samples, "ragloop_consumer_lag", group="embedded", topic="all")
    return sample(samples, "ragloop_consumer_lag", group=f"{settings.broker.topic_prefix}ragloop.agent", topic="chat.requests")


def scrape_once_lag(settings: Settings, client: httpx.Client, ok: Callable[[float], bool]) -> Samples | None:
    """The exported samples, provided the agents' lag in them satisfies `ok` (for `wait_for`)."""
    samples = scrape(client)
    return samples if ok(agent_lag(settings, samples)) else None


def waiting_for_engine(client: httpx.Client) -> float:
    return sample(scrape(client), "ragloop_agent_waiting_tasks")


@pytest.mark.slow
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


@pytest.mark.slow
def test_cancelled_queued_task_never_runs(queue_settings: Settings) -> None:
    with gateway(queue_settings) as (client, _):
        busy = submit(client, LONG, max_new_tokens=400)
        wait_status(client, busy["task_id"], {"running"})
        waiting = submit(client)
        cancelled = client.delete(f"/v1/tasks/{waiting['task_id']}").json()
        assert cancelled["status"] == "cancelled"
        client.delete(f"/v1/tasks/{busy['task_id']}")
        after = submit(client)  # the agent moves past the cancelled task to this one
        wait_status(client, after["task_id"], {"succeeded"})
        final = client.get(f"/v1/tasks/{waiting['task_id']}").json()
    assert final["status"] == "cancelled" and final["attempts"] == 0 and final["started_at"] is None


@pytest.mark.slow
def test_cancelling_a_running_task_stops_generation(queue_settings: Settings) -> None:
    """The engine stops decoding the cancelled answer well short of its token budget (the story
    runs to the budget when left alone): the agent notices the cancel at its next lease renewal."""
    budget = 200
    with gateway(queue_settings) as (client, runtime):
        engine = runtime.services.engine
        decoded_before = engine.tokens_decoded  # type: ignore[attr-defined]
        task = submit(client, LONG, max_new_tokens=budget)
        tokens = 0
        for kind, _ in sse_events(client, f"/v1/tasks/{task['task_id']}/events"):
            if kind == "token":
                tokens += 1
                if tokens == 3:
                    assert client.delete(f"/v1/tasks/{task['task_id']}").json()["status"] == "cancelled"
        final = wait_status(client, task["task_id"], {"cancelled", "succeeded"})
        next_task = submit(client)  # one answer at a time: once this one is done, the cancelled one has ended
        wait_status(client, next_task["task_id"], {"succeeded"})
        decoded = engine.tokens_decoded - decoded_before  # type: ignore[attr-defined]
    assert final["status"] == "cancelled" and final["result"] is None
    assert decoded < budget, f"{decoded} tokens decoded: the cancelled answer ran on to its budget of {budget}"


def _random_adapter(settings: Settings, path: Path) -> None:
    """A real PEFT LoRA adapter with untrained (zero) B matrices: answers as the base model does."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from models.fetch import ensure_smollm2

    model = AutoModelForCausalLM.from_pretrained(ensure_smollm2(settings.model_cache))
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(path)


@pytest.mark.slow
def test_failed_attempts_are_retried_then_succeed(queue_settings: Settings, tmp_path: Path) -> None:
    built, adapter = tmp_path / "built-adapter", tmp_path / "late-adapter"
    _random_adapter(queue_settings, built)  # built beforehand, so it appears at `adapter` in one rename
    patient = queue_settings.override(worker_max_retries=8, worker_retry_backoff_s=0.05)  # ~12 s of retries
    with gateway(patient) as (client, runtime):
        runtime.stores.registry.register_version(ModelVersionRecord(version="v-late", family=patient.llm.model_family, state="candidate",
                                                          adapter_path=str(adapter)))
        task = submit(client, model_version="v-late")
        wait_for(lambda: client.get(f"/v1/tasks/{task['task_id']}").json()["attempts"] >= 2, timeout=120, interval=0.05,
                 what="a second attempt (the first failed: no adapter yet)")
        built.rename(adapter)
        final = wait_status(client, task["task_id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    assert final["attempts"] >= 2 and final["result"]["model_version"] == "v-late"


def test_exhausted_retries_fail_the_task_and_dead_letter_it(queue_settings: Settings, tmp_path: Path) -> None:
    with gateway(queue_settings) as (client, runtime):
        runtime.stores.registry.register_version(ModelVersionRecord(version="v-broken", family=queue_settings.llm.model_family, state="candidate",
                                                          adapter_path=str(tmp_path / "missing")))
        task = submit(client, model_version="v-broken")
        final = wait_status(client, task["task_id"], {"failed", "succeeded"}, timeout=120)
        letters = read_topic(queue_settings, runtime.broker, "chat.requests.dlq")
    assert final["status"] == "failed" and "adapter_config.json" in final["error"]
    assert final["attempts"] == queue_settings.workers.max_retries + 1
    assert any(task["task_id"] in letter["payload"] and "adapter_config.json" in letter["reason"] for letter in letters)


def test_idempotency_key_returns_the_same_task(queue_settings: Settings) -> None:
    with gateway(queue_settings, roles=()) as (client, _):
        first = submit(client, headers={"Idempotency-Key": "order-42"})
        again = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "What is the capital of France?"}]},
                            headers={"Idempotency-Key": "order-42"})
        other = submit(client, headers={"Idempotency-Key": "order-43"})
    assert again.status_code == 200 and again.json()["task_id"] == first["task_id"]
    assert other["task_id"] != first["task_id"]


@pytest.mark.slow
def test_full_queue_answers_503_with_retry_after_and_loses_nothing(queue_settings: Settings) -> None:
    full = queue_settings.override(max_queued_tasks=1, queue_full_retry_after_s=7)
    with gateway(full) as (client, _):
        busy = submit(client, LONG, max_new_tokens=400)
        wait_status(client, busy["task_id"], {"running"})
        waiting = submit(client)
        refused = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "one more?"}]})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "7"
        assert "limit 1" in refused.json()["detail"]
        client.delete(f"/v1/tasks/{busy['task_id']}")
        assert wait_status(client, waiting["task_id"], {"succeeded"})["result"]["answer"]


@pytest.mark.slow
def test_high_priority_task_overtakes_waiting_normal_ones(queue_settings: Settings) -> None:
    with gateway(queue_settings) as (client, _):
        busy = submit(client, LONG, max_new_tokens=400, conversation_id="busy")
        wait_status(client, busy["task_id"], {"running"})
        normal = [submit(client, f"Name a colour number {n}.", conversation_id=f"c{n}") for n in range(3)]
        if queue_settings.broker.is_embedded:
            # The embedded broker hands a task over as soon as its partition is free: the normal
            # tasks off the busy one's partition wait at the engine, where priority must decide.
            # (Kafka's consumer takes a topic's next message only after the current one: there
            # they wait in `chat.requests`, and the high task comes on its own topic.)
            wait_for(lambda: waiting_for_engine(client) >= 1, what="normal tasks waiting for the engine")
        holding = waiting_for_engine(client)
        high = submit(client, "Name a fruit.", priority="high")
        wait_for(lambda: waiting_for_engine(client) > holding, what="the high task waiting for the engine")
        client.delete(f"/v1/tasks/{busy['task_id']}")
        done = {t["task_id"]: wait_status(client, t["task_id"], {"succeeded"}) for t in [*normal, high]}
    assert done[high["task_id"]]["started_at"] < min(done[t["task_id"]]["started_at"] for t in normal)


@pytest.mark.slow
def test_metrics_report_queue_depth_lag_and_finished_tasks(queue_settings: Settings) -> None:
    """The exported values follow the queue: a waiting task shows in the depth and the lag, both
    return to zero once it is answered, and the answer counts once in the task counters."""
    succeeded = {"status": "succeeded"}
    with gateway(queue_settings) as (client, _):
        # One answered task first: Kafka reports lag only on partitions the agents' group has committed
        # (one conversation keeps every task of this test on one partition).
        wait_status(client, submit(client, conversation_id="metrics")["task_id"], {"succeeded"})
        before = scrape(client)
        busy = submit(client, LONG, max_new_tokens=400, conversation_id="metrics")
        wait_status(client, busy["task_id"], {"running"})
        waiting = submit(client, conversation_id="metrics")
        during = wait_for(lambda: scrape_once_lag(queue_settings, client, lambda lag: lag >= 1),
                          what="the waiting task in the consumer lag")  # Kafka's lag is re-read every 10 s
        client.delete(f"/v1/tasks/{busy['task_id']}")
        wait_status(client, waiting["task_id"], {"succeeded"})
        after = wait_for(lambda: scrape_once_lag(queue_settings, client, lambda lag: lag == 0), what="the consumer lag back at zero")
    assert sample(during, "ragloop_queue_depth") == 1 and sample(after, "ragloop_queue_depth") == 0
    for counter in ("ragloop_task_seconds_count", "ragloop_tasks_total"):
        assert sample(after, counter, **succeeded) - sample(before, counter, **succeeded) == 1, counter
