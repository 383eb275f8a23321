"""What a worker needs from a message broker, and nothing more.

Both brokers deliver raw bytes to the same handlers, in batches of up to ``max_batch`` messages
(whatever is already waiting; a batch never waits to fill). A handler that returns has finished
the effect of every message in its batch, so the broker may commit; a handler that raises wants
the whole batch again (Kafka seeks back, the embedded broker re-delivers after a pause).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class RawMessage:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


BatchHandler = Callable[[list[RawMessage]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    topic: str
    group: str
    handler: BatchHandler
    broadcast: bool = False  # every process gets every message (e.g. model hot-swap), not one per group
    max_processing_s: float = 300.0  # how long one batch may take before the broker assumes the worker died
    max_batch: int = 1  # most messages handed to one handler call


class Broker(Protocol):
    def subscribe(self, subscription: Subscription) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, value: bytes, *, key: str | None = None, headers: dict[str, str] | None = None) -> None: ...
