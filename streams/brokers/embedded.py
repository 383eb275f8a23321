"""The in-process broker behind `memory://`: real queue semantics without a server.

Publishing returns at once; each (topic, group) has a few partitions, each drained by its own task,
so consumers run concurrently while messages with the same key keep their order. A partition hands
its handler whatever is waiting, up to the subscription's ``max_batch``. A handler that
raises gets the message again after a pause, the way a Kafka consumer seeks back. Every published
message is also kept in a short per-topic log so DLQs can be inspected without a consumer.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict, deque

import structlog

from streams.brokers.base import RawMessage, Subscription

log = structlog.get_logger(__name__)


class EmbeddedBroker:
    def __init__(self, *, partitions: int = 3, retained: int = 10_000, redelivery_delay_s: float = 1.0) -> None:
        self._partitions = partitions
        self._redelivery_delay_s = redelivery_delay_s
        self._subscriptions: list[Subscription] = []
        self._queues: dict[str, list[tuple[Subscription, list[asyncio.Queue[RawMessage]]]]] = defaultdict(list)
        self._tasks: list[asyncio.Task[None]] = []
        self.retained: dict[str, deque[RawMessage]] = defaultdict(lambda: deque(maxlen=retained))
        self._running = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def subscribe(self, subscription: Subscription) -> None:
        if self._running:
            raise RuntimeError("subscribe before start(): the embedded broker wires partitions at start")
        self._subscriptions.append(subscription)

    async def start(self) -> None:
        for sub in self._subscriptions:
            queues: list[asyncio.Queue[RawMessage]] = [asyncio.Queue() for _ in range(self._partitions)]
            self._queues[sub.topic].append((sub, queues))
            for index, queue in enumerate(queues):
                name = f"{sub.group}:{sub.topic}[{index}]"
                self._tasks.append(asyncio.create_task(self._drain(sub, queue), name=name))
        self._running = True

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._queues.clear()

    async def publish(self, topic: str, value: bytes, *, key: str | None = None, headers: dict[str, str] | None = None) -> None:
        message = RawMessage(topic, key, value, dict(headers or {}))
        self.retained[topic].append(message)
        partition = zlib.crc32((key or "").encode()) % self._partitions if key else None
        for _, queues in self._queues.get(topic, []):
            target = queues[partition] if partition is not None else min(queues, key=lambda q: q.qsize())
            self._in_flight += 1
            self._idle.clear()
            target.put_nowait(message)

    def pending(self) -> int:
        """Deliveries accepted but not yet fully handled, across every consumer."""
        return self._in_flight

    async def join(self) -> None:
        """Wait until every delivery, including those published by handlers meanwhile, is handled."""
        await self._idle.wait()

    async def _drain(self, sub: Subscription, queue: asyncio.Queue[RawMessage]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < sub.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                while True:
                    try:
                        await sub.handler(batch)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("handler raised; redelivering", topic=sub.topic, group=sub.group, messages=len(batch))
                        await asyncio.sleep(self._redelivery_delay_s)
            finally:
                self._in_flight -= len(batch)
                if self._in_flight == 0:
                    self._idle.set()
