"""Tells running agents that a CLI command (`ragloop train`, `ragloop models promote|rollback|share`)
moved a version: the registry wrote the move's `model.updated` events into the outbox in the move's
own transaction (`models/announcements.py`); this sends them on the configured broker now.

Why from a CLI: the command changes the registry in its own process, and agents otherwise learn of it
only when they next read the registry (every RAGLOOP_LLM_SERVING_TTL_S). When the broker cannot be
reached now, any running process's outbox relay delivers the entries. With the embedded broker
(`memory://`) nobody in this process could hear them: they wait for the running `ragloop up`'s relay.
"""

from __future__ import annotations

import asyncio

from schemas.database import Database
from schemas.settings import Settings
from streams.brokers import make_broker
from streams.outbox_relay import Outbox
from streams.publisher import Publisher


def deliver(settings: Settings, db: Database) -> list[str]:
    """Send the unsent outbox entries now; returns the event ids sent ([] with the embedded broker, or when the broker is down)."""
    if settings.broker.is_embedded:
        return []

    async def send() -> list[str]:
        broker = make_broker(settings)
        outbox = Outbox(db, Publisher(broker), settings)
        try:
            await asyncio.wait_for(broker.start(), settings.workers.start_patience_s or 10.0)
            return await outbox.deliver_now()
        except Exception:  # noqa: BLE001 — the entries are in the outbox: a running relay sends them
            return []
        finally:
            await broker.stop()

    return asyncio.run(send())
