"""Test helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kafka import KafkaConsumer

from schemas.settings import Settings
from streams.brokers.base import Broker
from streams.brokers.embedded import EmbeddedBroker


async def eventually(check: Callable[[], Awaitable[bool] | bool], *, timeout: float = 60, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_topic(settings: Settings, broker: Broker, topic: str, *, timeout_s: float = 5) -> list[dict[str, Any]]:
    """Every JSON message on a topic so far (embedded: the retained log; Kafka: a fresh consumer from the start)."""
    if isinstance(broker, EmbeddedBroker):
        return [json.loads(m.value) for m in broker.retained[topic]]
    consumer = KafkaConsumer(settings.topic_prefix + topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000), group_id=None)
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()

