"""Worker middleware, written once: decode → validate → de-duplicate → retry → dead-letter.

A role's handler is a plain `async def handle(event)`; this wrapper gives every role the same
delivery contract: schema-invalid bytes go straight to `<topic>.dlq` with the validation error;
a failing handler is retried with exponential backoff and then dead-lettered with the reason; an
event id already processed by this consumer group is skipped; the broker commits only after all
of that returns.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from pydantic import ValidationError

from schemas.events import DeadLetter, Event
from streams.brokers.base import Broker, RawMessage, Subscription
from streams.metrics import EVENTS_CONSUMED, HANDLER_SECONDS
from streams.store import Store
from streams.topics import Topic

log = structlog.get_logger(__name__)
E = TypeVar("E", bound=Event)


class PermanentError(Exception):
    """The event can never succeed (bad reference, unsupported input): dead-letter without retrying."""


@dataclass
class RetryPolicy:
    max_retries: int = 3
    backoff_s: float = 0.5

    def delay(self, attempt: int) -> float:
        return self.backoff_s * (2 ** (attempt - 1))


@dataclass
class EventConsumer(Generic[E]):
    """Binds one topic's handler into a consumer group with the shared delivery contract."""

    topic: Topic
    group: str
    handle: Callable[[E], Awaitable[None]]
    on_dead_letter: Callable[[E, str], Awaitable[None]] | None = None
    broadcast: bool = False
    max_processing_s: float = 300.0

    def bind(self, broker: Broker, store: Store, retry: RetryPolicy) -> None:
        async def deliver(message: RawMessage) -> None:
            await self._deliver(message, broker, store, retry)

        broker.subscribe(Subscription(self.topic.name, self.group, deliver, self.broadcast, self.max_processing_s))

    async def _deliver(self, message: RawMessage, broker: Broker, store: Store, retry: RetryPolicy) -> None:
        try:
            event = self.topic.event.model_validate_json(message.value)
        except ValidationError as error:
            EVENTS_CONSUMED.labels(self.topic.name, self.group, "invalid").inc()
            await dead_letter(broker, self.topic, message, self.group, f"schema validation failed: {_describe(error)}", "ValidationError", 0)
            return
        if not self.broadcast and await asyncio.to_thread(store.already_processed, self.group, event.event_id):
            EVENTS_CONSUMED.labels(self.topic.name, self.group, "duplicate").inc()
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                with HANDLER_SECONDS.labels(self.topic.name, self.group).time():
                    await self.handle(event)  # type: ignore[arg-type]
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 — every failure is either retried or dead-lettered
                permanent = isinstance(error, PermanentError)
                if permanent or attempt > retry.max_retries:
                    reason = f"{type(error).__name__}: {error}"
                    log.warning("dead-lettering", topic=self.topic.name, group=self.group, event_id=event.event_id, attempts=attempt, reason=reason)
                    await dead_letter(broker, self.topic, message, self.group, reason, type(error).__name__, attempt)
                    if self.on_dead_letter is not None:
                        await self.on_dead_letter(event, reason)  # type: ignore[arg-type]
                    EVENTS_CONSUMED.labels(self.topic.name, self.group, "dead_lettered").inc()
                    break
                log.warning("handler failed; retrying", topic=self.topic.name, group=self.group, event_id=event.event_id, attempt=attempt, error=repr(error))
                await asyncio.sleep(retry.delay(attempt))
        if not self.broadcast:
            await asyncio.to_thread(store.mark_processed, self.group, event.event_id)
        EVENTS_CONSUMED.labels(self.topic.name, self.group, "ok").inc()


async def dead_letter(broker: Broker, topic: Topic, message: RawMessage, consumer: str, reason: str, error_type: str, attempts: int) -> None:
    try:
        payload, encoding = message.value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(message.value).decode(), "base64"
    letter = DeadLetter(topic=topic.name, key=message.key, consumer=consumer, reason=reason, error_type=error_type,
                        attempts=attempts, payload=payload, payload_encoding=encoding)  # type: ignore[arg-type]
    await broker.publish(topic.dlq, letter.model_dump_json().encode(), key=message.key, headers={"reason": reason[:200]})


def _describe(error: ValidationError) -> str:
    """`field.path: message` for each problem; what a producer needs to fix its payload."""
    parts = []
    for problem in error.errors():
        location = ".".join(str(p) for p in problem["loc"]) or "(body)"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)
