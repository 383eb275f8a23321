"""Delivers callbacks: each claimed in the store, attempted, recorded, and retried with exponential backoff.

Why this shape:
- `chat.responses` starts a delivery at once; a sweep of the store finds what no event announces
  (failed and cancelled tasks) and what a dead sender left behind (its lease lapsed). A
  compare-and-set claim makes the two paths, and any number of callback workers, deliver once.
- Every delivery is its own asyncio task and only the network attempt takes one of a bounded
  number of slots (never the backoff sleep), so one slow or failing receiver delays no other.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import structlog

from schemas.settings import Settings
from schemas.tables import TaskRecord
from streams.callbacks.outcome import USER_AGENT, Outcome
from streams.callbacks.slack import post_to_slack
from streams.callbacks.webhook import post_guarded
from streams.signing import DELIVERY_HEADER, RAGLOOP
from streams.stores import Stores
from streams.task_view import TaskOut

MAX_CONCURRENT_ATTEMPTS = 64
log = structlog.get_logger(__name__)


class CallbackSender:
    """Delivers callbacks concurrently, each claimed in the store, retried with exponential backoff."""

    def __init__(self, settings: Settings, stores: Stores) -> None:
        self.settings, self.tasks, self.deliveries, self.attempts = settings, stores.tasks, stores.callbacks, stores.attempts
        self.owner = f"callbacks:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_ATTEMPTS)
        self._warned_unsigned = False

    @property
    def lease_s(self) -> float:
        """Long enough for every attempt and backoff of one callback, so only a dead sender's lease lapses."""
        s = self.settings
        return s.callbacks.max_attempts * 2 * s.callbacks.timeout_s + s.callbacks.backoff_s * 2 ** (s.callbacks.max_attempts - 1) + 30

    def schedule(self, task_id: str) -> asyncio.Task[None]:
        """Start delivering a task's callback (or return the delivery already under way); the
        returned task ends when this sender is done with it: delivered, given up, or not its to send."""
        if (running := self._running.get(task_id)) is not None:
            return running
        delivery = asyncio.create_task(self._deliver(task_id), name=f"callback:{task_id}")
        self._running[task_id] = delivery
        delivery.add_done_callback(lambda _: self._running.pop(task_id, None))
        return delivery

    async def sweep(self) -> None:
        for task in await asyncio.to_thread(self.deliveries.callbacks_due):
            self.schedule(task.id)

    async def close(self) -> None:
        running = list(self._running.values())
        for delivery in running:
            delivery.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _deliver(self, task_id: str) -> None:
        if not await asyncio.to_thread(self.deliveries.claim_callback, task_id, self.owner, self.lease_s):
            return  # no callback, already delivered, or another sender holds it
        while True:
            task = await asyncio.to_thread(self.tasks.get_task, task_id)
            delivery = await asyncio.to_thread(self.deliveries.get, task_id)
            assert task is not None and task.callback_url and delivery is not None
            attempt = delivery.attempts + 1
            async with self._slots:
                try:
                    outcome = await self._attempt(task, attempt)
                except Exception as error:  # noqa: BLE001 — a bug in one delivery must not end the role
                    outcome = Outcome(False, True, f"{type(error).__name__}: {error}")
            last = outcome.delivered or not outcome.retry or attempt >= self.settings.callbacks.max_attempts
            status = "delivered" if outcome.delivered else "failed" if last else "delivering"
            held = await asyncio.to_thread(self.deliveries.record_callback_attempt, task_id, self.owner, status=status)
            (log.info if outcome.delivered else log.warning)("callback attempt", task_id=task_id, attempt=attempt,
                                                             status=status, detail=outcome.detail)
            if last or not held:
                return
            await asyncio.sleep(self.settings.callbacks.backoff_s * 2 ** (attempt - 1))

    async def _attempt(self, task: TaskRecord, attempt: int) -> Outcome:
        url = task.callback_url or ""
        if url.startswith("slack://"):
            return await post_to_slack(self.settings, task, url)
        body = TaskOut.of(task, await asyncio.to_thread(self.attempts.of, task.id)).model_dump_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: task.id,
                   "X-Ragloop-Attempt": str(attempt)}
        # Signed with the callback secret, never an inbound webhook key: every receiver holds this one.
        if (secret := self.settings.security.callback_signing_secret()) is not None:
            headers |= RAGLOOP.sign(secret.get_secret_value(), body)
        elif not self._warned_unsigned:  # once, and only when a callback is really sent
            self._warned_unsigned = True
            log.warning("RAGLOOP_CALLBACK_SECRET (or the legacy RAGLOOP_WEBHOOK_SECRET) is not set: callbacks are sent unsigned")
        return await post_guarded(url, body, headers, timeout_s=self.settings.callbacks.timeout_s,
                                  allow_private=self.settings.callbacks.allow_private)
