"""The in-process broker behind `memory://`: real queue semantics without a server.

Publishing returns at once; each (topic, group) has a few partitions, each drained by its own task,
so consumers run concurrently while messages with the same key keep their order. A partition hands
its handler whatever is waiting, up to the subscription's ``max_batch``. A handler that
raises gets the message again after a pause, the way a Kafka consumer seeks back. Every published
message is also kept in a short per-topic log so DLQs can be inspected without a consumer.

Everything is bounded, since all of it lives in the process's memory: each partition queue holds
at most ``queue_max`` messages, and the per-topic log at most ``retained`` messages and
``retained_bytes`` bytes (the oldest go first). A publish into a full queue waits for room (back-
pressure) for up to ``publish_timeout_s``, then raises ``BrokerFull``; the gateway's work waits
in the outbox meanwhile and its relay publishes it once there is room (streams/outbox_relay.py).
A message goes to every subscribed group or to none, never to some.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict, deque

import structlog

from streams.brokers.base import RawMessage, Subscription

log = structlog.get_logger(__name__)


class BrokerFull(Exception):
    """A partition queue stayed full for the whole publish timeout: consumers are behind. Retry later."""


class EmbeddedBroker:
    def __init__(self, *, partitions: int = 3, retained: int = 10_000, retained_bytes: int = 64 * 1024 * 1024,
                 queue_max: int = 10_000, publish_timeout_s: float = 5.0, redelivery_delay_s: float = 1.0) -> None:
        self._partitions = partitions
        self._redelivery_delay_s = redelivery_delay_s
        self._queue_max = queue_max
        self._publish_timeout_s = publish_timeout_s
        self._retained_bytes = retained_bytes
        self._retained_size: dict[str, int] = defaultdict(int)
        self._subscriptions: list[Subscription] = []
        self._queues: dict[str, list[tuple[Subscription, list[asyncio.Queue[RawMessage]]]]] = defaultdict(list)
        self._tasks: list[asyncio.Task[None]] = []
        self._room = asyncio.Event()  # set whenever a consumer takes messages off a queue
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
            queues: list[asyncio.Queue[RawMessage]] = [asyncio.Queue(maxsize=self._queue_max) for _ in range(self._partitions)]
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
        partition = zlib.crc32((key or "").encode()) % self._partitions if key else None
        deadline = asyncio.get_running_loop().time() + self._publish_timeout_s
        while True:
            targets = [queues[partition] if partition is not None else min(queues, key=lambda q: q.qsize())
                       for _, queues in self._queues.get(topic, [])]
            if not any(target.full() for target in targets):
                break
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise BrokerFull(f"the embedded broker's queue for {topic!r} is full ({self._queue_max} messages, "
                                 "RAGLOOP_BROKER_EMBEDDED_QUEUE_MAX): consumers are behind; retry later")
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), remaining)
            except TimeoutError:
                pass
        for target in targets:  # no await in this loop: every group gets the message, or (above) none
            self._in_flight += 1
            self._idle.clear()
            target.put_nowait(message)
        self._retain(message)

    def _retain(self, message: RawMessage) -> None:
        log_ = self.retained[message.topic]
        if log_.maxlen is not None and len(log_) == log_.maxlen:
            self._retained_size[message.topic] -= len(log_[0].value)
        log_.append(message)
        self._retained_size[message.topic] += len(message.value)
        while self._retained_size[message.topic] > self._retained_bytes and len(log_) > 1:
            self._retained_size[message.topic] -= len(log_.popleft().value)

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
            self._room.set()
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
