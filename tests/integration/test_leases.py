"""Leases (the visibility timeout) of the chat task queue, on the embedded broker and on Kafka.

An agent holds a running task by a lease it renews while generating: a task that runs longer
than one lease stays with its agent, and a task whose agent is killed is re-queued once its
lease lapses and answered by another agent. Real agents throughout: in-process runtimes, and
`ragloop up` / `ragloop worker agent` processes killed with SIGKILL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from schemas.events import utcnow
from schemas.settings import Settings
from schemas.tables import TaskRecord
from streams.workers.agent import SWEEPS_PER_LEASE
from tests.e2e.conftest import Processes, free_port, processes, wait_healthy
from tests.integration.test_task_queue import LONG, gateway, sse_events, submit, wait_status
from tests.support import read_topic, wait_for

pytestmark = pytest.mark.slow  # real agents answer with the real SmolLM2

LEASE_S = 3.0
SWEEP_S = max(LEASE_S / SWEEPS_PER_LEASE, 0.5)  # how often an agent looks for lapsed leases (streams/workers/agent.py)


@pytest.fixture(params=["embedded", "kafka"])
def lease_settings(request: pytest.FixtureRequest, settings: Settings, unique: str) -> Settings:
    update: dict[str, object] = {"max_new_tokens": 16, "task_lease_s": LEASE_S}
    if request.param == "kafka":
        update |= {"broker_url": request.getfixturevalue("kafka_url"), "topic_prefix": f"l{unique}.", "auth": "off"}
    return settings.override(**update)


def test_a_task_running_longer_than_its_lease_keeps_it(lease_settings: Settings) -> None:
    """Renewal moves the lease forward while the answer is generated, so past the first lease's
    end, with every agent sweeping for lapsed leases, the task is still held by its first claim
    and no retry of it was published for another agent to take (on Kafka a second agent shares
    the consumer group)."""
    seen: list[tuple[datetime, TaskRecord]] = []
    with ExitStack() as stack:
        client, runtime = stack.enter_context(gateway(lease_settings))
        if not lease_settings.broker.is_embedded:
            stack.enter_context(gateway(lease_settings))
        task_id = submit(client, LONG, max_new_tokens=400)["task_id"]

        def past_the_first_lease() -> bool:
            now, record = utcnow(), runtime.stores.tasks.get_task(task_id)
            assert record is not None
            seen.append((now, record))
            first = next(r for _, r in seen if r.status == "running") if record.status == "running" else None
            return first is not None and now > first.lease_expires_at + timedelta(seconds=2 * SWEEP_S)

        wait_for(past_the_first_lease, timeout=300, interval=0.2, what="the task running past its first lease and two sweeps")
        published = [m["event_id"] for m in read_topic(lease_settings, runtime.broker, "chat.requests") if m["task_id"] == task_id]
        client.delete(f"/v1/tasks/{task_id}")  # proven; no need to hear the whole story
    assert len(published) == 1, f"the sweep re-queued a task whose agent was alive: {published}"
    running = [(at, record) for at, record in seen if record.status == "running"]
    assert {(r.lease_owner, r.attempts) for _, r in running} == {(running[0][1].lease_owner, 1)}
    expiries = [r.lease_expires_at for _, r in running]
    assert expiries == sorted(expiries) and expiries[-1] > expiries[0], "the lease was never renewed"
    assert all(at < r.lease_expires_at for at, r in running), "the lease lapsed while the task ran"


class Deployment(Protocol):
    def start_agent(self, name: str) -> str:
        """Start an agent process; returns the URL of a gateway that sees its tasks."""

    def kill(self, name: str) -> None: ...


class EmbeddedDeployment:
    """`ragloop up` on one home: the restarted process is the other agent (the task row survives in SQLite)."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs

    def start_agent(self, name: str) -> str:
        url = f"http://127.0.0.1:{free_port()}"
        self.procs.start(name, "up", "--port", url.rsplit(":", 1)[1])
        wait_healthy(url, self.procs)
        return url

    def kill(self, name: str) -> None:
        self.procs.kill(name)


class KafkaDeployment:
    """A gateway in this process and `ragloop worker agent` processes in one consumer group."""

    def __init__(self, procs: Processes, gateway_url: str) -> None:
        self.procs, self.gateway_url = procs, gateway_url

    def start_agent(self, name: str) -> str:
        self.procs.start(name, "worker", "agent")
        return self.gateway_url

    def kill(self, name: str) -> None:
        self.procs.kill(name)


@pytest.fixture(params=["embedded", "kafka"])
def deployment(request: pytest.FixtureRequest, settings: Settings, unique: str, tmp_path: Path) -> Iterator[Deployment]:
    env = {"RAGLOOP_HOME": str(settings.home), "RAGLOOP_TASK_LEASE_S": str(LEASE_S), "RAGLOOP_MAX_NEW_TOKENS": "16"}
    if request.param == "embedded":
        with processes({**env, "RAGLOOP_BROKER_URL": "memory://"}, tmp_path / "logs") as procs:
            yield EmbeddedDeployment(procs)
        return
    cluster = settings.override(broker_url=request.getfixturevalue("kafka_url"), topic_prefix=f"k{unique}.",
                                auth="off", task_lease_s=LEASE_S)
    env |= {"RAGLOOP_BROKER_URL": cluster.broker.url, "RAGLOOP_TOPIC_PREFIX": cluster.broker.topic_prefix}
    with gateway(cluster, roles=()) as (client, _), processes(env, tmp_path / "logs") as procs:
        yield KafkaDeployment(procs, str(client.base_url))


def test_the_task_of_a_killed_agent_is_answered_by_another_once_its_lease_expires(deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.start_agent("agent-1"), timeout=300) as client:
        task_id = submit(client, LONG, max_new_tokens=64)["task_id"]
        with closing(sse_events(client, f"/v1/tasks/{task_id}/events")) as events:
            next(kind for kind, _ in events if kind == "token")  # agent-1 is generating the answer
    deployment.kill("agent-1")
    with httpx.Client(base_url=deployment.start_agent("agent-2"), timeout=300) as client:
        final = wait_status(client, task_id, {"succeeded", "failed"}, timeout=600)
    assert final["status"] == "succeeded" and final["attempts"] == 2, final
