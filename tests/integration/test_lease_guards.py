"""The lease owner guards every transition an agent makes, and the sweep's decision about a lapsed
lease is taken once (issue #11, item 3), identical on SQLite and PostgreSQL: an agent whose task was
taken over can neither fail it nor close the new attempt; exactly one of several concurrent sweepers
re-queues a lapse; a task whose lease lapsed `tasks.max_attempts` times is given up."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from schemas.database import Database
from schemas.events import ChatRequest, ChatTurn
from schemas.settings import Settings
from schemas.tables import TaskRecord
from streams.brokers import make_broker
from streams.publisher import Publisher
from streams.services import Services
from streams.stores import Stores
from streams.task_attempts import Lapse, TaskAttempts
from streams.task_store import TaskStore, task_from_request
from streams.workers import agent


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, settings: Settings) -> Database:
    if request.param == "postgres":
        settings = settings.override(database_url=request.getfixturevalue("postgres_url"))
    return Database.from_settings(settings)


def new_task(db: Database) -> str:
    return new_request(db).task_id


def new_request(db: Database) -> ChatRequest:
    request = ChatRequest(messages=[ChatTurn(role="user", content="hello")])
    TaskStore(db).create_task(task_from_request(request))
    return request


def test_an_agent_whose_task_was_taken_over_can_neither_fail_it_nor_close_the_new_attempt(db: Database) -> None:
    store, attempts, task_id = TaskStore(db), TaskAttempts(db), new_task(db)
    assert attempts.claim(task_id, "stale-agent", 0.0) == 1  # its lease lapses at once
    assert attempts.claim(task_id, "live-agent", 60.0) == 2  # and another agent takes the task over
    assert not store.transition_task(task_id, from_states=("queued", "running"), to="failed", held_by="stale-agent", error="late")
    attempts.end(task_id, 2, "stale-agent", "error")
    task = store.get_task(task_id)
    assert task is not None and (task.status, task.lease_owner, task.error) == ("running", "live-agent", None)
    assert [(a.attempt, a.agent, a.outcome) for a in attempts.of(task_id)] == [(1, "stale-agent", "lease_expired"), (2, "live-agent", "running")]


async def test_an_agent_that_dead_letters_a_request_fails_its_task_only_if_no_other_agent_holds_it(db: Database, settings: Settings) -> None:
    """The agent's own dead-letter callback (the path a request takes after its retries), not a store call."""
    chat = agent.consumers(Services(settings, Stores.of(db)), Publisher(make_broker(settings)))[0]
    assert chat.on_dead_letter is not None
    held, unclaimed = new_request(db), new_request(db)
    assert TaskAttempts(db).claim(held.task_id, "live-agent", 60.0) == 1
    for request in (held, unclaimed):
        await chat.on_dead_letter(request, "RuntimeError: boom")
    tasks = TaskStore(db)
    assert [(t.status, t.lease_owner) for t in map(tasks.get_task, (held.task_id, unclaimed.task_id)) if t] == [
        ("running", "live-agent"), ("failed", None)]


def test_an_agent_fails_a_task_it_holds_or_one_nobody_claimed(db: Database) -> None:
    store, attempts = TaskStore(db), TaskAttempts(db)
    held, unclaimed = new_task(db), new_task(db)
    assert attempts.claim(held, "agent", 60.0) == 1
    assert store.transition_task(held, from_states=("queued", "running"), to="failed", held_by="agent", error="boom")
    assert store.transition_task(unclaimed, from_states=("queued", "running"), to="failed", held_by="agent", error="boom")
    assert {store.get_task(t).status for t in (held, unclaimed)} == {"failed"}  # type: ignore[union-attr]


def sweep_together(attempts: TaskAttempts, task: TaskRecord, sweepers: int) -> list[Lapse]:
    """The decisions of `sweepers` replicas that look at the same lapse at the same moment."""
    start = threading.Barrier(sweepers)

    def sweep(_: int) -> Lapse | None:
        start.wait()
        return attempts.lapse(task, 60.0, 3)

    with ThreadPoolExecutor(sweepers) as pool:
        return [decision for decision in pool.map(sweep, range(sweepers)) if decision is not None]


def test_exactly_one_of_concurrent_sweepers_decides_each_lapse(db: Database) -> None:
    store, attempts = TaskStore(db), TaskAttempts(db)
    for _ in range(10):  # before the compare-and-set, most rounds had 2-4 deciders on PostgreSQL
        task_id = new_task(db)
        attempts.claim(task_id, "dead-agent", 0.0)
        seen = store.get_task(task_id)
        assert seen is not None
        decisions = sweep_together(attempts, seen, 4)
        assert len(decisions) == 1, f"{len(decisions)} sweepers re-queued one lapse of {task_id}"


def test_a_lapse_is_retried_again_only_after_another_whole_lease(db: Database) -> None:
    store, attempts, task_id = TaskStore(db), TaskAttempts(db), new_task(db)
    attempts.claim(task_id, "dead-agent", 0.0)
    seen = store.get_task(task_id)
    assert seen is not None
    first = attempts.lapse(seen, 60.0, 3)
    assert first is not None and (first.action, first.lapses) == ("retry", 1)
    assert attempts.lapse(seen, 60.0, 3) is None  # nobody claimed it, but the retry is still in flight
    again = attempts.lapse(seen, 0.0, 3)  # a whole lease later: published again, still one lapse
    assert again is not None and (again.action, again.lapses) == ("retry", 1)


def test_a_task_whose_lease_lapsed_max_attempts_times_is_given_up_unless_claimed_since(db: Database) -> None:
    store, attempts, task_id = TaskStore(db), TaskAttempts(db), new_task(db)
    decisions = []
    for n in (1, 2):
        attempts.claim(task_id, f"doomed-{n}", 0.0)
        seen = store.get_task(task_id)
        assert seen is not None
        decisions.append(attempts.lapse(seen, 60.0, 2))
    assert [(d.action, d.lapses) for d in decisions if d is not None] == [("retry", 1), ("give_up", 2)]
    assert seen is not None
    attempts.claim(task_id, "late-redelivery", 0.0)  # an agent took it between the sweep's look and its give-up
    assert not attempts.give_up(seen, "agent died 2 times")
    current = store.get_task(task_id)
    assert current is not None and current.status == "running"
    assert attempts.give_up(current, "agent died 3 times")  # that agent died too, and the next sweep gives up
    failed = store.get_task(task_id)
    assert failed is not None and (failed.status, failed.error, failed.lease_owner) == ("failed", "agent died 3 times", None)
