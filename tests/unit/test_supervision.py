"""Background loops outlive their errors (streams/supervision.py): logged, counted, restarted."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from streams.supervision import supervise
from tests.support import eventually


def errors_of(loop: str) -> float:
    return REGISTRY.get_sample_value("ragloop_background_errors_total", {"loop": loop}) or 0.0


async def test_a_loop_that_raises_once_is_counted_and_keeps_running() -> None:
    runs: list[int] = []
    before = errors_of("flaky")

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ConnectionError("database blip")
        await asyncio.Event().wait()  # the second run goes on for good

    task = asyncio.create_task(supervise("flaky", flaky, backoff_s=0.01))
    try:
        await eventually(lambda: len(runs) == 2, timeout=5, what="the loop running again after its error")
        assert not task.done()
        assert errors_of("flaky") == before + 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_supervised_loop_stops_when_cancelled() -> None:
    task = asyncio.create_task(supervise("idle", asyncio.Event().wait, backoff_s=0.01))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
