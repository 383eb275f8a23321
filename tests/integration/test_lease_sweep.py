"""The agents' sweep for lapsed leases, run as a deployed process runs it (a `Runtime`, supervised),
with stand-in agents that claim a task and die (issue #11, items 2 and 3): the sweep survives a
database error, and a task whose agents keep dying is failed and dead-lettered after the cap, on
the embedded broker and on Kafka. No model is loaded: nothing here generates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from schemas.events import ChatRequest, ChatTurn
from schemas.settings import Settings
from streams.dead_letters import DeadLetterStore, revive
from streams.runtime import Runtime
from streams.task_store import task_from_request
from streams.workers import agent
from tests.support import eventually, read_topic

LEASE_S = 1.0  # the sweep looks every 0.5 s


@pytest.fixture(params=["embedded", "kafka"])
def sweep_settings(request: pytest.FixtureRequest, settings: Settings, unique: str) -> Settings:
    update: dict[str, object] = {"task_lease_s": LEASE_S, "task_max_attempts": 2}
    if request.param == "kafka":
        update |= {"broker_url": request.getfixturevalue("kafka_url"), "topic_prefix": f"s{unique}.", "kafka_partitions": 1}
    return settings.override(**update)


@asynccontextmanager
async def sweeping(settings: Settings) -> AsyncIterator[Runtime]:
    """A process whose only work is the agents' sweep (no agent consumes, so retries stay on the topic)."""
    runtime = Runtime(settings, [])
    runtime.add_background(*agent.background(runtime.services, runtime.publisher))
    await runtime.start(warm=False)
    try:
        yield runtime
    finally:
        await runtime.stop()


def submitted(runtime: Runtime) -> ChatRequest:
    request = ChatRequest(messages=[ChatTurn(role="user", content="a question that kills its agent")])
    assert runtime.stores.tasks.create_task(task_from_request(request))
    return request


async def retries_of(runtime: Runtime, request: ChatRequest) -> int:
    messages = await asyncio.to_thread(read_topic, runtime.settings, runtime.broker, "chat.requests", timeout_s=1)
    return sum(m["task_id"] == request.task_id for m in messages)


async def requeued(runtime: Runtime, request: ChatRequest) -> bool:
    return await retries_of(runtime, request) > 0


async def test_a_task_whose_agents_keep_dying_is_failed_and_dead_lettered_after_the_cap(sweep_settings: Settings) -> None:
    async with sweeping(sweep_settings) as runtime:
        await agents_keep_dying(runtime)


async def agents_keep_dying(sweeping: Runtime) -> None:
    request, stores = submitted(sweeping), sweeping.stores
    assert stores.attempts.claim(request.task_id, "doomed-1", 0.0) == 1  # it dies at once: its lease lapses
    await eventually(lambda: requeued(sweeping, request), timeout=30, what="the sweep re-queueing the first lapse")
    assert stores.attempts.claim(request.task_id, "doomed-2", 0.0) == 2  # the next agent dies too: the cap (2) is reached

    def failed() -> bool:
        task = stores.tasks.get_task(request.task_id)
        return task is not None and task.status == "failed"

    await eventually(failed, timeout=30, what="the task failed after two lapsed leases")
    task = stores.tasks.get_task(request.task_id)
    assert task is not None and task.error is not None and "agent died 2 times" in task.error
    assert await retries_of(sweeping, request) == 1, "the sweep re-queued a task past its cap"
    letters = [row for row in DeadLetterStore(stores.db).list(topic="chat.requests") if row.event_id == request.event_id]
    assert [(row.reason, row.error_type, row.attempts) for row in letters] == [(task.error, "LeaseExpired", 2)]
    on_dlq = await asyncio.to_thread(read_topic, sweeping.settings, sweeping.broker, "chat.requests.dlq", timeout_s=1)
    assert [(m["reason"], ChatRequest.model_validate_json(m["payload"]).task_id) for m in on_dlq] == [(task.error, request.task_id)]
    revive(stores.db, letters[0])  # what `ragloop dlq replay` does before publishing it again
    revived = stores.tasks.get_task(request.task_id)
    assert revived is not None and revived.status == "queued"


async def test_the_sweep_goes_on_after_a_database_error(settings: Settings) -> None:
    """A private SQLite file, whose tasks table goes missing for a while: every query of the sweep fails."""
    async with sweeping(settings.override(task_lease_s=LEASE_S)) as runtime:
        await sweep_survives(runtime)


async def sweep_survives(sweeping: Runtime) -> None:
    errors = REGISTRY.get_sample_value("ragloop_background_errors_total", {"loop": "requeue_expired"}) or 0.0
    with sweeping.stores.db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE tasks RENAME TO tasks_away"))
    await eventually(lambda: (REGISTRY.get_sample_value("ragloop_background_errors_total", {"loop": "requeue_expired"}) or 0) > errors,
                     timeout=30, what="the sweep failing on the missing table")
    with sweeping.stores.db.engine.begin() as connection:
        connection.execute(text("ALTER TABLE tasks_away RENAME TO tasks"))
    request = submitted(sweeping)
    assert sweeping.stores.attempts.claim(request.task_id, "dead-agent", 0.0) == 1
    await eventually(lambda: requeued(sweeping, request), timeout=30, what="the sweep, running again, re-queueing a lapse")
