"""Publishes typed events to their topic, keyed for ordering, counted for metrics."""

from __future__ import annotations

from schemas.events import Event
from streams.brokers.base import Broker
from streams.metrics import EVENTS_PUBLISHED
from streams.topics import topic_for


class Publisher:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def publish(self, event: Event, *, topic: str | None = None) -> None:
        """Publish to the event's own topic, or to ``topic`` (a lane that carries the same event)."""
        topic = topic or topic_for(event).name
        await self.broker.publish(topic, event.model_dump_json().encode(), key=event.key(), headers={"type": event.type})
        EVENTS_PUBLISHED.labels(topic).inc()
