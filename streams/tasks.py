"""The chat task queue as the gateway and adapters see it: submit, read, wait, cancel, follow.

Accepting a task means a durable row plus its `chat.requests` event, written in one transaction
(the outbox) and published right after; if that publish fails the relay delivers it later, so
nothing accepted is dropped and a broker outage does not fail the submission. An event too large
for one message is refused (`EventTooLarge`) before anything is written. Above the queue-depth
limits new work is refused up front (the caller gets 503 with Retry-After) instead of being
accepted and stranded.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from schemas.events import ChatRequest, ChatToken, principals_fingerprint
from schemas.settings import Settings
from schemas.tables import TERMINAL_TASK_STATES, TaskRecord
from streams.metrics import QUEUE_DEPTH
from streams.outbox_relay import Outbox
from streams.publisher import Publisher
from streams.task_attempts import TaskAttempts
from streams.task_store import TaskStore, task_from_request


class IdempotencyConflict(Exception):
    """The Idempotency-Key names a task that another reader (other principals) submitted."""


class QueueFull(Exception):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class TaskEvent:
    """One item of a task's event stream: a status change, a token delta, or the final result."""

    kind: Literal["status", "token", "result"]
    data: dict[str, Any]


class TokenHub:
    """Fans `chat.tokens` out to this process's listeners, keeping a short backlog per task so a
    listener that connects late still receives every delta in order."""

    def __init__(self, max_tasks: int = 2000) -> None:
        self._backlog: OrderedDict[str, list[ChatToken]] = OrderedDict()
        self._listeners: dict[str, set[asyncio.Queue[ChatToken]]] = {}
        self._max_tasks = max_tasks

    def publish(self, token: ChatToken) -> None:
        backlog = self._backlog.setdefault(token.task_id, [])
        self._backlog.move_to_end(token.task_id)
        backlog.append(token)
        while len(self._backlog) > self._max_tasks:
            self._backlog.popitem(last=False)
        for queue in self._listeners.get(token.task_id, ()):
            queue.put_nowait(token)

    def subscribe(self, task_id: str) -> tuple[list[ChatToken], asyncio.Queue[ChatToken]]:
        queue: asyncio.Queue[ChatToken] = asyncio.Queue()
        self._listeners.setdefault(task_id, set()).add(queue)
        return list(self._backlog.get(task_id, [])), queue

    def unsubscribe(self, task_id: str, queue: asyncio.Queue[ChatToken]) -> None:
        listeners = self._listeners.get(task_id, set())
        listeners.discard(queue)
        if not listeners:
            self._listeners.pop(task_id, None)


class TaskService:
    def __init__(self, store: TaskStore, attempts: TaskAttempts, publisher: Publisher, settings: Settings, tokens: TokenHub,
                 outbox: Outbox | None = None) -> None:
        self.store, self.attempts, self.publisher, self.settings, self.tokens = store, attempts, publisher, settings, tokens
        self.outbox = outbox or Outbox(store.db, publisher, settings)
        self._waiters: dict[str, asyncio.Event] = {}

    async def submit(self, request: ChatRequest, *, idempotency_key: str | None = None) -> tuple[TaskRecord, bool]:
        """Accept a task; returns (task, created). A repeated idempotency key returns the first task,
        to the same tenant and principals only: keys are scoped by both, and a task found under a
        key is checked to be the caller's, so nobody reaches another reader's answer through a key."""
        who = principals_fingerprint(request.principals)
        if idempotency_key and who:
            idempotency_key = f"{idempotency_key}#{who}"
        if idempotency_key:
            existing = await asyncio.to_thread(self.store.find_task_by_idempotency_key, request.tenant, idempotency_key)
            if existing is not None:
                return self._own(existing, who), False
        entry = self.outbox.entry(request, aggregate="task", aggregate_id=request.task_id)
        await self._check_capacity(request.tenant)
        record = task_from_request(request, idempotency_key=idempotency_key)
        created = await asyncio.to_thread(self.store.create_task, record, outbox=[entry])
        if not created:  # a concurrent repeat of the same key won the insert
            existing = await asyncio.to_thread(self.store.find_task_by_idempotency_key, request.tenant, idempotency_key or "")
            if existing is None:
                raise ValueError(f"task_id {request.task_id!r} already exists")
            return self._own(existing, who), False
        await self.outbox.send([entry])
        return record, True

    @staticmethod
    def _own(task: TaskRecord, who: str) -> TaskRecord:
        if task.asked_as() != who:
            raise IdempotencyConflict("this Idempotency-Key was used by another caller; choose another key")
        return task

    async def _check_capacity(self, tenant: str) -> None:
        total, mine = await asyncio.to_thread(self.store.queue_depth, tenant)
        QUEUE_DEPTH.set(total)
        limits = self.settings
        if total >= limits.tasks.max_queued:
            raise QueueFull(f"the queue holds {total} waiting tasks (limit {limits.tasks.max_queued}); retry later", limits.tasks.retry_after_s)
        if mine >= limits.tasks.max_queued_per_tenant:
            raise QueueFull(f"tenant {tenant!r} has {mine} waiting tasks (limit {limits.tasks.max_queued_per_tenant}); retry later",
                            limits.tasks.retry_after_s)

    async def get(self, task_id: str) -> TaskRecord | None:
        return await asyncio.to_thread(self.store.get_task, task_id)

    def finished(self, task_id: str) -> None:
        """Wake whoever waits on this task (called when its `chat.responses` event arrives)."""
        waiter = self._waiters.get(task_id)
        if waiter is not None:
            waiter.set()

    async def wait(self, task_id: str, timeout_s: float, *, poll_s: float = 1.0) -> TaskRecord | None:
        """Until the task is terminal or the timeout passes. A response event wakes the waiter at
        once; the slow poll covers outcomes that publish no response (failed, cancelled)."""
        deadline = time.monotonic() + timeout_s
        waiter = self._waiters.setdefault(task_id, asyncio.Event())
        try:
            task = await self.get(task_id)
            while task is not None and task.status not in TERMINAL_TASK_STATES and (left := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(waiter.wait(), min(poll_s, left))
                except TimeoutError:
                    pass
                task = await self.get(task_id)
            return task
        finally:
            self._waiters.pop(task_id, None)

    async def cancel(self, task_id: str) -> TaskRecord | None:
        """A queued task will never run; a running one stops generating at its next token."""
        await asyncio.to_thread(self.store.transition_task, task_id, from_states=("queued", "running"), to="cancelled",
                                error="cancelled by the client")
        return await self.get(task_id)

    async def events(self, task_id: str, *, poll_s: float = 0.1, token_grace_s: float = 2.0) -> AsyncIterator[TaskEvent]:
        """Status changes and token deltas in order, ending with the result (or the failure).

        Tokens travel on their own topic and may trail the final status by a moment, so once the
        task is finished the stream waits briefly for the deltas the agent says it published.
        """
        backlog, queue = self.tokens.subscribe(task_id)
        try:
            status: str | None = None
            next_index = 0
            pending = list(backlog)
            grace_until: float | None = None
            attempt_state: tuple[int, bool] | None = None
            while True:
                task = await self.get(task_id)
                if task is None:
                    return
                for token in sorted(pending, key=lambda t: t.index):
                    if token.index < next_index:
                        continue
                    if status != "running":
                        status = "running"
                        yield TaskEvent("status", {"task_id": task_id, "status": status, "attempts": task.attempts})
                    yield TaskEvent("token", {"task_id": task_id, "index": token.index, "delta": token.delta})
                    next_index = token.index + 1
                pending = []
                if task.status in TERMINAL_TASK_STATES:
                    expected = task.result.token_events if task.result else 0
                    grace_until = grace_until or time.monotonic() + token_grace_s
                    if next_index >= expected or time.monotonic() > grace_until:
                        if status != task.status:
                            yield TaskEvent("status", {"task_id": task_id, "status": task.status, "attempts": task.attempts})
                        result = task.result.summary() if task.result else None
                        yield TaskEvent("result", {"task_id": task_id, "status": task.status, "result": result, "error": task.error})
                        return
                elif task.status != status and not (status == "running" and task.status == "queued"):
                    status = task.status
                    yield TaskEvent("status", {"task_id": task_id, "status": status, "attempts": task.attempts})
                if status == "running" and task.status == "running":  # recovery is visible: lease lapsed, then taken over
                    now = (task.attempts, task.lease_lapsed())
                    if attempt_state is not None and now != attempt_state:
                        yield TaskEvent("status", {"task_id": task_id, "status": status, "attempts": now[0], "lease_expired": now[1]})
                    attempt_state = now
                try:
                    pending.append(await asyncio.wait_for(queue.get(), poll_s))
                    while not queue.empty():
                        pending.append(queue.get_nowait())
                except TimeoutError:
                    pass
        finally:
            self.tokens.unsubscribe(task_id, queue)
