"""What a worker needs from a message broker, and nothing more.

Both brokers deliver raw bytes to the same handlers. A handler that returns has finished its
effect, so the broker may commit; a handler that raises wants the message again (Kafka seeks
back, the embedded broker re-delivers after a pause).
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


MessageHandler = Callable[[RawMessage], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    topic: str
    group: str
    handler: MessageHandler
    broadcast: bool = False  # every process gets every message (e.g. model hot-swap), not one per group
    max_processing_s: float = 300.0  # how long one message may take before the broker assumes the worker died


class Broker(Protocol):
    def subscribe(self, subscription: Subscription) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, value: bytes, *, key: str | None = None, headers: dict[str, str] | None = None) -> None: ...
