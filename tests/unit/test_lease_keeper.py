"""A task's lease survives failed renewals until it would lapse, and is reported lost only when it is
(streams/lease_keeper.py); the agent stops generating on that signal."""

from __future__ import annotations

import asyncio
import threading
import time

from streams.lease_keeper import keep_lease
from tests.support import eventually

LEASE_S = 0.3


class Store:
    """The task store's `renew_lease` as the agent sees it: True, False, or an error."""

    def __init__(self, *answers: bool | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[float] = []

    async def renew(self) -> bool:
        self.calls.append(time.monotonic())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def keep(store: Store) -> tuple[asyncio.Task[None], threading.Event]:
    lost = threading.Event()
    return asyncio.create_task(keep_lease(store.renew, LEASE_S, lost, task_id="t")), lost


async def test_one_failed_renewal_does_not_lose_the_lease() -> None:
    store = Store(ConnectionError("database blip"), True)
    task, lost = await keep(store)
    try:
        await eventually(lambda: len(store.calls) >= 4, timeout=5, what="renewals after the failed one")
        assert not lost.is_set() and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_lease_is_lost_when_every_renewal_fails_until_it_lapses() -> None:
    store = Store(ConnectionError("database down"))
    started = time.monotonic()
    task, lost = await keep(store)
    await asyncio.wait_for(task, timeout=5)
    assert lost.is_set()
    assert len(store.calls) > 2, "a failed renewal was not retried"
    assert store.calls[-1] - started >= LEASE_S * 0.9, "the lease was given up before it lapsed"


async def test_the_lease_is_lost_at_once_when_the_task_was_taken_over() -> None:
    store = Store(True, False)
    task, lost = await keep(store)
    await asyncio.wait_for(task, timeout=5)
    assert lost.is_set() and len(store.calls) == 2


async def test_a_renewal_that_hangs_past_the_lapse_loses_the_lease() -> None:
    async def stalled() -> bool:
        await asyncio.Event().wait()  # the database never answers
        return True

    lost = threading.Event()
    await asyncio.wait_for(keep_lease(stalled, LEASE_S, lost, task_id="t"), timeout=5)
    assert lost.is_set()
