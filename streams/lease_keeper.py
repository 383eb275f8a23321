"""Keeps a running task's lease while its answer is generated, and says when it is really lost.

One failed renewal (a database blip) must not end the lease: renewal is retried until the lease
would lapse. The lease is lost when the store says so (the task was cancelled, or another agent
took it over) or when it lapsed without a successful renewal; then `lost` is set and the generating
thread stops at its next token, so no answer is produced without a lease.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

import structlog

from streams.metrics import LEASE_RENEWAL_ERRORS

log = structlog.get_logger(__name__)

RENEWALS_PER_LEASE = 3  # renew at a third of the lease: two renewals may fail before it lapses


async def keep_lease(renew: Callable[[], Awaitable[bool]], lease_s: float, lost: threading.Event, *, task_id: str) -> None:
    """Renew every `lease_s / 3` until cancelled; sets `lost` and returns once the lease is gone."""
    interval = lease_s / RENEWALS_PER_LEASE
    held_until = time.monotonic() + lease_s  # the claim has just set the lease
    while True:
        await asyncio.sleep(max(min(interval, held_until - time.monotonic()), 0))
        try:
            # A renewal that hangs (a stalled database) is a failed one once the lease would lapse.
            if not await asyncio.wait_for(renew(), timeout=max(held_until - time.monotonic(), 0.01)):
                log.info("lease lost: task cancelled or taken over", task_id=task_id)
                break
            held_until = time.monotonic() + lease_s
            interval = lease_s / RENEWALS_PER_LEASE
        except Exception as error:  # noqa: BLE001 — a transient failure; retried until the lease would lapse
            LEASE_RENEWAL_ERRORS.inc()
            left = held_until - time.monotonic()
            if left <= 0:
                log.error("lease lapsed: every renewal failed", task_id=task_id, error=repr(error))
                break
            log.warning("lease renewal failed; retrying", task_id=task_id, error=repr(error), lease_left_s=round(left, 2))
            interval = lease_s / 10  # the last try falls on the moment the lease lapses (see the sleep)
    lost.set()
