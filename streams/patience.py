"""Waiting out a dependency that is not up yet, at process start.

A worker restarted while Kafka or PostgreSQL is briefly down (a rolling restart, a crash loop of
the database, a node reboot) should come up once they are back, not exit and leave its topics
unconsumed until someone notices. So the steps that first reach a dependency are retried with a
doubling backoff, each failure logged with what is being waited for, until
`RAGLOOP_WORKERS_START_PATIENCE_S` runs out; then the last error is raised as before.

`is_transient` says which errors mean "a dependency is down" (the database, the search service,
the broker, a full disk) rather than "this work is wrong": the start-up steps wait those out, and
the consumers retry them without bound instead of dead-lettering work that would succeed once the
dependency is back (streams/consumer.py).
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 15.0


def is_transient(error: BaseException) -> bool:
    """Whether `error` (or what it was raised from) says a dependency is unreachable or out of room,
    not that the work itself is wrong: trying the same work again later can succeed."""
    from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
    from opensearchpy.exceptions import ConnectionError as SearchConnectionError, TransportError
    from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError as PoolTimeout

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OperationalError, PoolTimeout, SearchConnectionError, KafkaConnectionError, KafkaTimeoutError,
                                ConnectionError)):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, TransportError) and current.status_code in (429, 502, 503, 504):
            return True  # a search node restarting, its shards not allocated yet, or overloaded
        if isinstance(current, KafkaError) and current.retriable:
            return True
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True  # the data disk is full: freed space makes the same write succeed
        current = current.__cause__
    return False


def patiently(what: str, step: Callable[[], T], *, patience_s: float, retry_on: tuple[type[BaseException], ...] = (Exception,),
              retry_if: Callable[[BaseException], bool] = lambda _: True) -> T:
    """`step()`, retried on `retry_on` errors for which `retry_if` holds, until it works or `patience_s` has passed."""
    deadline, delay = time.monotonic() + patience_s, FIRST_DELAY_S
    while True:
        try:
            return step()
        except retry_on as error:
            if not retry_if(error) or time.monotonic() + delay > deadline:
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
