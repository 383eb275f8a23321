"""Worker middleware, written once: decode → validate → de-duplicate → retry → dead-letter.

A role's handler is a plain `async def handle(event)`; this wrapper gives every role the same
delivery contract: schema-invalid bytes go straight to `<topic>.dlq` with the validation error
(and the task or document they name, if readable, is failed with it); a failing handler is retried
with exponential backoff and then dead-lettered with the reason; an event id already processed by
this consumer group is skipped; the broker commits only after all of that returns.

A dependency that is down (`streams.patience.is_transient`: the database, the search service, the
broker, a full disk) is not the work's fault: such failures are retried with capped backoff for as
long as it takes, never counted towards `max_retries` and never dead-lettered, and the same goes
for the consumer's own bookkeeping (the processed-event ledger, recording a letter, `on_dead_letter`).
So an outage holds a partition back, and its messages are acknowledged only once their outcome is
durable; nothing accepted ends dead-lettered, half-done or stuck because the database blinked.

Dead-lettering itself never blocks a partition: the letter on `<topic>.dlq` is bounded (see
streams/dead_letters.py), and when even that publish fails it is retried with backoff a bounded
number of times, then counted and logged; the `dead_letters` row already holds the letter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import structlog
from pydantic import ValidationError

from schemas.database import Database
from schemas.events import Event
from streams.brokers.base import Broker, RawMessage, Subscription
from streams.dead_letters import DeadLetterStore, bounded, fail_subject, letter_of
from streams.ledger import EventLedger
from streams.metrics import DEAD_LETTER_PUBLISH_FAILURES, DEAD_LETTERS, EVENTS_CONSUMED, HANDLER_SECONDS
from streams.patience import is_transient
from streams.topics import Topic

log = structlog.get_logger(__name__)
E = TypeVar("E", bound=Event)
R = TypeVar("R")


class PermanentError(Exception):
    """The event can never succeed (bad reference, unsupported input): dead-letter without retrying."""


@dataclass
class RetryPolicy:
    max_retries: int = 3
    backoff_s: float = 0.5

    max_backoff_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff_s * (2 ** (attempt - 1)), self.max_backoff_s)


BatchOutcome = dict[str, Exception]  # event_id → why that event failed; absent ids succeeded


@dataclass
class EventConsumer(Generic[E]):
    """Binds one topic's handler into a consumer group with the shared delivery contract.

    With ``handle_many`` and ``max_batch > 1`` the valid, new events of a delivered batch go to
    ``handle_many`` together (one embedding batch, one bulk write); it returns the events that
    failed, and only those fall back to ``handle`` one by one with the usual retries and DLQ, so
    one bad document never costs its neighbours their batch.
    """

    topic: Topic
    group: str
    handle: Callable[[E], Awaitable[None]]
    on_dead_letter: Callable[[E, str], Awaitable[None]] | None = None
    broadcast: bool = False
    max_processing_s: float = 300.0
    handle_many: Callable[[list[E]], Awaitable[BatchOutcome]] | None = None
    max_batch: int = 1

    def bind(self, broker: Broker, db: Database, retry: RetryPolicy) -> None:
        ledger, letters = EventLedger(db), DeadLetterStore(db)

        async def deliver(messages: list[RawMessage]) -> None:
            await self._deliver(messages, broker, ledger, retry, letters)

        max_batch = self.max_batch if self.handle_many is not None else 1
        broker.subscribe(Subscription(self.topic.name, self.group, deliver, self.broadcast, self.max_processing_s, max_batch))

    async def _deliver(self, messages: list[RawMessage], broker: Broker, ledger: EventLedger, retry: RetryPolicy, letters: DeadLetterStore) -> None:
        events: list[tuple[E, RawMessage]] = []
        for message in messages:
            event = await self._validate(message, broker, letters, retry)
            if event is not None:
                events.append((event, message))
        if not self.broadcast and events:
            ids = [e.event_id for e, _ in events]
            done = await outlast(lambda: asyncio.to_thread(ledger.processed_among, self.group, ids), retry, "read the event ledger",
                                 self.topic.name)
            fresh: list[tuple[E, RawMessage]] = []
            for event, message in events:
                if event.event_id in done:
                    EVENTS_CONSUMED.labels(self.topic.name, self.group, "duplicate").inc()
                    continue
                done.add(event.event_id)  # a second copy within this batch is a duplicate too
                fresh.append((event, message))
            events = fresh
        for run in _runs_of_distinct_keys(events):
            await self._handle_run(run, broker, ledger, retry, letters)

    async def _handle_run(self, events: list[tuple[E, RawMessage]], broker: Broker, ledger: EventLedger, retry: RetryPolicy,
                          letters: DeadLetterStore) -> None:
        failures: BatchOutcome = {}
        batched = self.handle_many is not None and len(events) > 1
        if batched:
            failures = await self._handle_batch([e for e, _ in events])
        for event, message in events:
            ok = True
            if not batched:  # a run of one event
                ok = await self._handle_with_retries(event, message, broker, retry, letters)
            elif event.event_id in failures:
                ok = await self._handle_with_retries(event, message, broker, retry, letters, first_error=failures[event.event_id])
            if ok:
                EVENTS_CONSUMED.labels(self.topic.name, self.group, "ok").inc()
        if not self.broadcast:  # one ledger write for the whole run, after every effect is durable
            ids = [e.event_id for e, _ in events]
            await outlast(lambda: asyncio.to_thread(ledger.mark_processed_many, self.group, ids), retry, "write the event ledger",
                          self.topic.name)

    async def _validate(self, message: RawMessage, broker: Broker, letters: DeadLetterStore, retry: RetryPolicy) -> E | None:
        try:
            return self.topic.event.model_validate_json(message.value)  # type: ignore[return-value]
        except ValidationError as error:
            EVENTS_CONSUMED.labels(self.topic.name, self.group, "invalid").inc()
            reason = f"schema validation failed: {_describe(error)}"
            await dead_letter(broker, letters, self.topic, message, self.group, reason, "ValidationError", 0, retry)
            if not self.broadcast:  # no handler saw it, so no on_dead_letter: fail what it names here
                payload = message.value.decode("utf-8", errors="replace")
                await outlast(lambda: asyncio.to_thread(fail_subject, letters.db, self.topic.name, payload, reason), retry,
                              "fail what an invalid event names", self.topic.name)
            return None

    async def _handle_batch(self, events: list[E]) -> BatchOutcome:
        assert self.handle_many is not None
        try:
            with HANDLER_SECONDS.labels(self.topic.name, self.group).time():
                return await self.handle_many(events)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 — the whole batch falls back to one by one
            log.warning("batch handler failed; handling one by one", topic=self.topic.name, group=self.group,
                        events=len(events), error=repr(error))
            return {e.event_id: error for e in events}

    async def _handle_with_retries(self, event: E, message: RawMessage, broker: Broker, retry: RetryPolicy, letters: DeadLetterStore, *,
                                   first_error: Exception | None = None) -> bool:
        """Handle until it works (True); dead-letter a permanent failure at once and any other
        after ``retry.max_retries`` retries (False). ``first_error`` counts as a failed first attempt.
        A dependency that is down is waited out: those failures are retried without bound."""
        attempt = failed = 0
        while True:
            attempt += 1
            try:
                if first_error is not None and attempt == 1:
                    raise first_error
                with HANDLER_SECONDS.labels(self.topic.name, self.group).time():
                    await self.handle(event)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 — every failure is either retried or dead-lettered
                permanent = isinstance(error, PermanentError)
                if not permanent and is_transient(error):
                    log.warning("handler failed: a dependency is down; retrying until it is back", topic=self.topic.name, group=self.group,
                                event_id=event.event_id, attempt=attempt, error=repr(error))
                    await asyncio.sleep(retry.delay(attempt))
                    continue
                failed += 1
                if permanent or failed > retry.max_retries:
                    reason = f"{type(error).__name__}: {error}"
                    await dead_letter(broker, letters, self.topic, message, self.group, reason, type(error).__name__, attempt, retry)
                    if self.on_dead_letter is not None:
                        await outlast(partial(self.on_dead_letter, event, reason), retry, "mark the dead-lettered work failed",
                                      self.topic.name)
                    EVENTS_CONSUMED.labels(self.topic.name, self.group, "dead_lettered").inc()
                    return False
                log.warning("handler failed; retrying", topic=self.topic.name, group=self.group, event_id=event.event_id, attempt=attempt, error=repr(error))
                await asyncio.sleep(retry.delay(failed))


async def dead_letter(broker: Broker, letters: DeadLetterStore, topic: Topic, message: RawMessage, consumer: str, reason: str,
                      error_type: str, attempts: int, retry: RetryPolicy) -> None:
    """Record the letter (for `ragloop dlq` and the API), publish its bounded copy to `<topic>.dlq`,
    count it and say so once in the log. Recording comes first: it is the letter; the topic copy
    is retried with backoff and then given up (counted, logged), never left to block the partition."""
    letter = letter_of(message.value, topic=topic.name, key=message.key, consumer=consumer, reason=reason, error_type=error_type,
                       attempts=attempts)
    row = await outlast(lambda: asyncio.to_thread(letters.record, letter), retry, "record the dead letter", topic.name)
    copy = bounded(letter, row.id)
    try:
        await _with_backoff(lambda: broker.publish(topic.dlq, copy.model_dump_json().encode(), key=copy.key,
                                                   headers={"reason": reason[:200]}), retry, "publish the dead letter", topic.name)
    except Exception as error:  # noqa: BLE001 — the row holds the letter; the partition moves on
        DEAD_LETTER_PUBLISH_FAILURES.labels(topic.name).inc()
        log.error("dead letter recorded but not published to its topic", topic=topic.dlq, dead_letter_id=row.id, error=repr(error))
    DEAD_LETTERS.labels(topic.name, error_type).inc()
    log.warning("dead-lettered", topic=topic.name, consumer=consumer, dead_letter_id=row.id, event_id=row.event_id,
                attempts=attempts, reason=reason, replay=f"ragloop dlq replay {topic.name} --ids {row.id}")


async def _with_backoff(step: Callable[[], Awaitable[R]], retry: RetryPolicy, what: str, topic: str) -> R:
    """``step`` up to ``retry.max_retries`` more times, waiting ``retry.delay`` between; the last error is raised."""
    return await _retrying(step, retry, lambda _error, attempt: attempt <= retry.max_retries, f"could not {what}; retrying", topic)


async def outlast(step: Callable[[], Awaitable[R]], retry: RetryPolicy, what: str, topic: str) -> R:
    """``step`` until it works, waiting out a dependency that is down (``is_transient``) with capped
    backoff for as long as it takes; any other error is raised at once. For the steps that make a
    message's outcome durable: the message must not be acknowledged without them, and raising
    would only redeliver it at once, with no backoff, into the same outage."""
    return await _retrying(step, retry, lambda error, _attempt: is_transient(error),
                           f"could not {what}: a dependency is down; retrying until it is back", topic)


async def _retrying(step: Callable[[], Awaitable[R]], retry: RetryPolicy, again: Callable[[Exception, int], bool],
                    message: str, topic: str) -> R:
    """``step`` until it works or ``again(error, attempt)`` says no (then the error is raised), with ``retry.delay`` between."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not again(error, attempt):
                raise
            log.warning(message, topic=topic, attempt=attempt, error=repr(error))
            await asyncio.sleep(retry.delay(attempt))


def _describe(error: ValidationError) -> str:
    """`field.path: message` for each problem; what a producer needs to fix its payload."""
    parts = []
    for problem in error.errors():
        location = ".".join(str(p) for p in problem["loc"]) or "(body)"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)


def _runs_of_distinct_keys(events: list[tuple[E, RawMessage]]) -> list[list[tuple[E, RawMessage]]]:
    """Consecutive runs in which no message key repeats. A run is handled (retries included)
    before the next starts, so two events for one key never race inside a batch: per-key order
    holds exactly as it does one message at a time."""
    runs: list[list[tuple[E, RawMessage]]] = [[]]
    keys: set[str] = set()
    for event, message in events:
        if message.key is not None and message.key in keys:
            runs.append([])
            keys = set()
        runs[-1].append((event, message))
        if message.key is not None:
            keys.add(message.key)
    return [run for run in runs if run]
