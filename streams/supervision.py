"""Background loops that outlive their errors: the lease sweep must not die for good on one database blip.

`Runtime` runs every role's background loop through `supervise`: an error is logged with the loop's
name, counted in `ragloop_background_errors_total{loop}`, and the loop is started again after a
backoff that doubles while it keeps failing at once (so a dependency that is down is not hammered).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from streams.metrics import BACKGROUND_ERRORS

log = structlog.get_logger(__name__)

# A coroutine function, not any awaitable: each run of the loop is a fresh coroutine.
BackgroundLoop = Callable[[], Coroutine[Any, Any, None]]


async def supervise(name: str, loop: BackgroundLoop, *, backoff_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
    """Run `loop` until cancelled, restarting it after each error. The backoff starts again from
    `backoff_s` once a run lasted longer than `max_backoff_s` (the loop had recovered)."""
    delay = backoff_s
    while True:
        started = time.monotonic()
        try:
            await loop()
            log.warning("background loop returned; starting it again", loop=name)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            BACKGROUND_ERRORS.labels(name).inc()
            log.error("background loop failed; restarting it", loop=name, error=repr(error), retry_in_s=delay, exc_info=error)
        if time.monotonic() - started > max_backoff_s:
            delay = backoff_s
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_backoff_s)
