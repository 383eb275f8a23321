"""Delivers the outbox (`schemas/outbox_store.py`): accepted work is never left without its event.

Whoever accepts work writes its row and the event it owes in one transaction, then publishes right
after the commit (`Outbox.send`): the fast path. When that publish fails (broker down, a dead
process between commit and publish) the entry stays unsent and the relay, a background loop of
every runtime, publishes it later, in the order accepted. A restart publishes whatever is unsent;
on the embedded broker, which kept nothing, it also publishes again the events of work still
pending. Consumers de-duplicate by `event_id`, which the outbox keeps, so a second delivery is
harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import structlog

from schemas.database import Database
from schemas.events import ChatRequest, Event, utcnow
from schemas.outbox_store import Aggregate, OutboxStore, outbox_entry
from schemas.settings import Settings
from schemas.tables import OutboxRecord
from streams.metrics import EVENTS_PUBLISHED
from streams.publisher import Publisher

log = structlog.get_logger(__name__)

ENVELOPE_BYTES = 1024  # key, headers and record-batch framing that Kafka counts beside the value
SENT_RETENTION = timedelta(days=1)  # sent entries kept for the embedded broker's restart recovery
BATCH = 100
# The fast path answers the caller: with the broker unreachable a publish can block for the
# client's whole request timeout, so past this the request returns (202) and the relay delivers.
FAST_PATH_TIMEOUT_S = 3.0


class EventTooLarge(ValueError):
    """The event cannot be carried by one broker message: refused (413) before anything is written."""


class Outbox:
    """Usage: ``entry = outbox.entry(event, aggregate="task", aggregate_id=id)``; write it with the row
    (``store.create_task(row, outbox=[entry])``); then ``await outbox.send([entry])``."""

    def __init__(self, db: Database, publisher: Publisher, settings: Settings) -> None:
        self.store = OutboxStore(db)
        self.publisher = publisher
        self.scope = settings.broker.topic_prefix
        self.max_message_bytes = settings.broker.max_message_bytes
        self.interval_s = settings.broker.relay_interval_s
        self.embedded = settings.broker.is_embedded
        self._lock = asyncio.Lock()

    def entry(self, event: Event, *, aggregate: Aggregate, aggregate_id: str, hint: str = "") -> OutboxRecord:
        """The outbox row for `event`; `EventTooLarge` when no broker message could carry it."""
        row = outbox_entry(event, aggregate=aggregate, aggregate_id=aggregate_id, scope=self.scope)
        check_size(row.payload, self.max_message_bytes, hint)
        return row

    async def accept(self, event: Event, *, aggregate: Aggregate, aggregate_id: str) -> None:
        """Accept an event that is its own record (no row announces it): durable first, then sent."""
        entry = self.entry(event, aggregate=aggregate, aggregate_id=aggregate_id)
        await asyncio.to_thread(self.store.add, [entry])
        await self.send([entry])

    async def send(self, entries: Sequence[OutboxRecord]) -> bool:
        """Publish committed entries now. A failure is logged, not raised: the entries are durable
        and the relay delivers them; returns whether all went out."""
        try:
            await asyncio.wait_for(self._publish(entries), FAST_PATH_TIMEOUT_S)
            return True
        except Exception as error:  # noqa: BLE001 — the accepted work is safe (also on a timeout); the relay retries
            log.warning("publish failed; the outbox relay will deliver", event_ids=[e.event_id for e in entries], error=repr(error))
            return False

    async def flush(self, *, grace_s: float = 0.0) -> list[str]:
        """Publish unsent entries older than `grace_s` (younger ones are the fast path's), oldest first;
        stops at the first failure so nothing overtakes what came before it. Returns the event ids sent."""
        sent: list[str] = []
        async with self._lock:
            while True:
                before = utcnow() - timedelta(seconds=grace_s)
                entries = await asyncio.to_thread(self.store.unsent, self.scope, created_before=before, limit=BATCH)
                for entry in entries:
                    try:
                        await self._publish([entry])
                    except Exception as error:
                        await asyncio.to_thread(self.store.mark_failed, entry.seq or 0, repr(error))
                        raise
                    sent.append(entry.event_id)
                if len(entries) < BATCH:
                    return sent

    async def deliver_now(self) -> list[str]:
        """Publish what is owed now, for a caller whose store wrote the entries itself (the model registry's transitions):
        the fast path of `send` without the rows in hand. A failure is logged, not raised: the relay delivers later."""
        try:
            return await asyncio.wait_for(self.flush(), FAST_PATH_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 — the entries are durable; the relay retries
            log.warning("publish failed; the outbox relay will deliver", error=repr(error))
            return []

    async def recover(self) -> int:
        """Embedded broker only, at start: publish what is unsent, then again the events of tasks still
        queued and of documents whose latest event has not taken effect (a restart emptied the
        in-process broker). Returns how many were published again."""
        fresh = set(await self.flush())
        tasks = [ChatRequest.model_validate(task.request) for task in await asyncio.to_thread(self.store.queued_tasks)]
        documents = await asyncio.to_thread(self.store.pending_documents, self.scope)
        again = [self.entry(request, aggregate="task", aggregate_id=request.task_id) for request in tasks] + documents
        again = [entry for entry in again if entry.event_id not in fresh]
        await self._publish(again, record=False)
        if again:
            log.info("republished pending work after a restart", events=len(again))
        return len(again)

    async def relay(self) -> None:
        """The background loop: at start whatever a previous process left (and, embedded, what the
        broker lost), then every `relay_interval_s` what the fast path could not publish. An error is
        logged and the loop goes on."""
        first = True
        while True:
            try:
                if first and self.embedded:
                    await self.recover()
                else:
                    await self.flush(grace_s=0.0 if first else self.interval_s)
                first = False
                await asyncio.to_thread(self.store.prune, self.scope, utcnow() - SENT_RETENTION)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 — broker or database down: try again next round
                log.warning("outbox relay round failed", error=repr(error))
            await asyncio.sleep(self.interval_s)

    async def _publish(self, entries: Sequence[OutboxRecord], *, record: bool = True) -> None:
        for entry in entries:
            await self.publisher.broker.publish(entry.topic, entry.payload.encode(), key=entry.key, headers={"type": entry.type})
            EVENTS_PUBLISHED.labels(entry.topic).inc()
        if record:
            await asyncio.to_thread(self.store.mark_sent, [e.seq for e in entries if e.seq is not None])


def check_size(payload: str, max_message_bytes: int, hint: str = "") -> None:
    size = len(payload.encode())
    if size + ENVELOPE_BYTES > max_message_bytes:
        raise EventTooLarge(f"the event is {size} bytes; a broker message carries at most {max_message_bytes - ENVELOPE_BYTES} "
                            f"(RAGLOOP_MAX_MESSAGE_BYTES){'; ' + hint if hint else ''}")
