"""Waiting out a dependency that is not up yet, at process start.

A worker restarted while Kafka or PostgreSQL is briefly down (a rolling restart, a crash loop of
the database, a node reboot) should come up once they are back, not exit and leave its topics
unconsumed until someone notices. So the steps that first reach a dependency are retried with a
doubling backoff, each failure logged with what is being waited for, until
`RAGLOOP_WORKERS_START_PATIENCE_S` runs out; then the last error is raised as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 15.0


def patiently(what: str, step: Callable[[], T], *, patience_s: float, retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """`step()`, retried on `retry_on` errors until it works or `patience_s` has passed."""
    deadline, delay = time.monotonic() + patience_s, FIRST_DELAY_S
    while True:
        try:
            return step()
        except retry_on as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(f"{what} is not reachable yet; retrying", error=repr(error), retry_in_s=delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)


async def patiently_async(what: str, step: Callable[[], Awaitable[T]], *, patience_s: float,
                          retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """`patiently` for a coroutine step."""
    deadline, delay = time.monotonic() + patience_s, FIRST_DELAY_S
    while True:
        try:
            return await step()
        except retry_on as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(f"{what} is not reachable yet; retrying", error=repr(error), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
