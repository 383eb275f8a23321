"""The in-process broker keeps everything bounded: full partition queues push back on publishers
(then fail with BrokerFull), and the per-topic log keeps at most its byte budget."""

from __future__ import annotations

import asyncio

import pytest

from streams.brokers.base import RawMessage, Subscription
from streams.brokers.embedded import BrokerFull, EmbeddedBroker


async def blocked_broker(queue_max: int, publish_timeout_s: float) -> tuple[EmbeddedBroker, asyncio.Event, asyncio.Event, list[bytes]]:
    """One partition whose handler holds the first message it takes until `release` is set."""
    started, release, handled = asyncio.Event(), asyncio.Event(), []

    async def handler(batch: list[RawMessage]) -> None:
        started.set()
        await release.wait()
        handled.extend(m.value for m in batch)

    broker = EmbeddedBroker(partitions=1, queue_max=queue_max, publish_timeout_s=publish_timeout_s)
    broker.subscribe(Subscription("t", "g", handler))
    await broker.start()
    return broker, started, release, handled


def test_a_full_queue_makes_publish_fail_with_broker_full_naming_the_setting() -> None:
    async def scenario() -> None:
        broker, started, release, handled = await blocked_broker(queue_max=2, publish_timeout_s=0.05)
        try:
            await broker.publish("t", b"taken by the blocked handler")
            await started.wait()  # the consumer holds the first message: the queue is empty again
            await broker.publish("t", b"queued 1")
            await broker.publish("t", b"queued 2")
            with pytest.raises(BrokerFull, match="RAGLOOP_BROKER_EMBEDDED_QUEUE_MAX"):
                await broker.publish("t", b"no room")
            release.set()
            await broker.join()
            assert handled == [b"taken by the blocked handler", b"queued 1", b"queued 2"]
        finally:
            await broker.stop()

    asyncio.run(scenario())


def test_a_publish_into_a_full_queue_waits_for_room_instead_of_failing() -> None:
    async def scenario() -> None:
        broker, started, release, handled = await blocked_broker(queue_max=1, publish_timeout_s=60.0)
        try:
            await broker.publish("t", b"a")
            await started.wait()
            await broker.publish("t", b"b")
            waiting = asyncio.create_task(broker.publish("t", b"c"))
            await asyncio.sleep(0)
            assert not waiting.done()  # back-pressure: the queue is full, the publisher waits
            release.set()
            await waiting
            await broker.join()
            assert handled == [b"a", b"b", b"c"]
        finally:
            await broker.stop()

    asyncio.run(scenario())


def test_the_retained_log_keeps_at_most_its_byte_budget_newest_first() -> None:
    async def scenario() -> None:
        broker = EmbeddedBroker(retained_bytes=100)
        await broker.start()
        for n in range(10):
            await broker.publish("t", bytes([n]) * 30)
        kept = list(broker.retained["t"])
        assert sum(len(m.value) for m in kept) <= 100
        assert kept[-1].value == bytes([9]) * 30 and len(kept) == 3
        await broker.stop()

    asyncio.run(scenario())
