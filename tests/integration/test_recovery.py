"""Recovery from a dead agent is visible and quick: the lapsed lease shows on the task and in its
event stream, another agent takes over within about one lease, and each attempt keeps its own start."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from schemas.events import ChatOptions, ChatRequest, ChatTurn
from schemas.settings import Settings
from streams.runtime import Runtime
from streams.task_store import task_from_request
from streams.task_view import TaskOut
from streams.tasks import TaskEvent, TaskService, TokenHub
from tests.support import eventually

pytestmark = pytest.mark.slow  # the surviving agent generates the answer with SmolLM2


async def test_a_dead_agents_task_shows_the_lapse_and_is_taken_over_with_both_attempts_kept(settings: Settings) -> None:
    lease_s = 2.0
    settings = settings.override(task_lease_s=lease_s, max_new_tokens=8)
    runtime = Runtime(settings, ["agent"])
    request = ChatRequest(messages=[ChatTurn(role="user", content="Say hello.")], options=ChatOptions(retrieval=False, stream=False))
    runtime.stores.tasks.create_task(task_from_request(request))
    attempts = runtime.stores.attempts
    # The first agent claimed it and died mid-answer: it never renews its lease again.
    assert attempts.claim(request.task_id, "dead-host:1:abc", lease_s) == 1

    tasks = TaskService(runtime.stores.tasks, runtime.stores.attempts, runtime.publisher, settings, TokenHub())
    seen: list[TaskEvent] = []

    async def follow() -> None:
        async for item in tasks.events(request.task_id, poll_s=0.05):
            seen.append(item)

    follower = asyncio.create_task(follow())
    await eventually(lambda: any(e.data.get("lease_expired") for e in seen), timeout=lease_s * 5, what="the lapse in the event stream")
    assert TaskOut.of(runtime.stores.tasks.get_task(request.task_id), []).lease_expired  # type: ignore[arg-type]

    await runtime.start()  # a surviving agent: its sweep re-publishes the task, and it answers
    try:
        # Liveness, not speed: the sweep runs every lease/10, so a takeover within three leases is generous.
        await eventually(lambda: attempts.of(request.task_id)[-1].attempt == 2, timeout=lease_s * 3, what="the takeover")
        await asyncio.wait_for(follower, timeout=300)
    finally:
        await runtime.stop()

    statuses = [(e.data["status"], e.data["attempts"], e.data.get("lease_expired")) for e in seen if e.kind == "status"]
    assert statuses == [("running", 1, None), ("running", 1, True), ("running", 2, False), ("succeeded", 2, None)], statuses
    task = runtime.stores.tasks.get_task(request.task_id)
    assert task is not None and task.status == "succeeded" and task.attempts == 2
    log = attempts.of(request.task_id)
    assert [(a.attempt, a.agent, a.outcome) for a in log] == [(1, "dead-host:1:abc", "lease_expired"), (2, log[1].agent, "succeeded")]
    assert log[1].agent != "dead-host:1:abc"
    assert log[1].started_at - log[0].started_at >= timedelta(seconds=lease_s), "each attempt keeps its own start"
    assert task.started_at == log[0].started_at, "the task's started_at is its first attempt's"
    shown = TaskOut.of(task, log)
    assert not shown.lease_expired and [a.outcome for a in shown.attempt_log] == ["lease_expired", "succeeded"]
