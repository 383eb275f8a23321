"""Named, bounded thread pools for blocking work that must not wait behind other blocking work.

`asyncio.to_thread` runs everything on the loop's default pool (min(32, cores + 4) threads: 6 on
two cores). Store calls use it for every request and every event; URL fetches used it too, so 64
slow fetches took every thread and the API, and the agent's lease renewals, waited behind them
until a fetch timed out, long enough for a lease to expire and a second agent to take the task.
So slow or must-not-wait work gets a pool of its own:

- ``FETCH``: loading ingested documents (URL fetches, PDF parsing), `RAGLOOP_INGEST_FETCH_THREADS` wide;
  the rest of a batch waits in its queue, not in the default pool.
- ``LEASE``: the agent's lease renewals, a few threads nothing else uses, so a renewal never
  waits behind generation or fetches.

The default pool stays for the short store calls.

    document = await run_in(FETCH, settings.ingest.fetch_threads, load, event)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

FETCH = "fetch"
LEASE = "lease"
LEASE_THREADS = 2

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def pool(name: str, size: int) -> ThreadPoolExecutor:
    """The process's pool of that name, created on first use with `size` threads."""
    with _lock:
        if name not in _pools:
            _pools[name] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"ragloop-{name}")
        return _pools[name]


async def run_in(name: str, size: int, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread` on the named pool (context variables, such as log context, go along)."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool(name, size), call)
