"""Callbacks role: `chat.responses` and a sweep of the store start callback deliveries (`streams/callbacks/`).

The event starts a delivery at once; the sweep finds what no event announces (failed and cancelled
tasks) and what a dead sender left behind. Both hand the task to the process's one
`CallbackSender` (`services.callbacks`), whose claim in the store makes them deliver once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from schemas.events import ChatResponse
from streams.consumer import EventConsumer
from streams.publisher import Publisher
from streams.services import Services
from streams.topics import TOPICS

GROUP = "ragloop.callbacks"
SWEEP_INTERVAL_S = 1.0
log = structlog.get_logger(__name__)


def consumers(services: Services, publisher: Publisher) -> list[EventConsumer]:
    sender = services.callbacks

    async def on_response(response: ChatResponse) -> None:
        sender.schedule(response.task_id)  # returns at once: delivery runs beside the consumer

    return [EventConsumer(TOPICS["chat.responses"], GROUP, on_response)]


def background(services: Services, publisher: Publisher) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    sender = services.callbacks

    async def sweep_callbacks() -> None:
        try:
            while True:
                try:
                    await sender.sweep()
                except Exception as error:  # noqa: BLE001 — a database hiccup must not stop callbacks for good
                    log.warning("callback sweep failed", error=repr(error))
                await asyncio.sleep(SWEEP_INTERVAL_S)
        finally:
            await sender.close()

    return [sweep_callbacks]
