"""Tells running agents that `ragloop train` moved a version: the `model.updated` events of the move
(`models.actions`), written to the outbox and sent on the configured broker.

Why from a CLI: the command changes the registry in its own process, and agents otherwise learn of it
only when they next read the registry (every RAGLOOP_LLM_SERVING_TTL_S). The entries are written
first, so when the broker cannot be reached now, any running process's outbox relay delivers them.
With the embedded broker (`memory://`) there is nobody in this process to tell: nothing is sent.
"""

from __future__ import annotations

import asyncio

from models.actions import latest_updates
from models.registry import ModelRegistry
from schemas.database import Database
from schemas.events import ModelUpdated
from schemas.settings import Settings
from streams.brokers import make_broker
from streams.outbox_relay import Outbox
from streams.publisher import Publisher


def announce(settings: Settings, db: Database, registry: ModelRegistry, version: str, *, tenant: str) -> list[str]:
    """Announce the latest move of `version`; returns the event ids written ([] with the embedded broker)."""
    if settings.broker.is_embedded:
        return []
    events: list[ModelUpdated] = latest_updates(registry, version, caused_by=tenant)

    async def send() -> None:
        broker = make_broker(settings)
        outbox = Outbox(db, Publisher(broker), settings)
        entries = []
        for event in events:
            entries.append(outbox.entry(event, aggregate="model", aggregate_id=event.version))
        await asyncio.to_thread(outbox.store.add, entries)  # durable first: a relay delivers what is not sent now
        try:
            await asyncio.wait_for(broker.start(), settings.workers.start_patience_s or 10.0)
            await outbox.send(entries)
        except Exception:  # noqa: BLE001 — the entries are in the outbox: a running relay sends them
            pass
        finally:
            await broker.stop()

    asyncio.run(send())
    return [event.event_id for event in events]
