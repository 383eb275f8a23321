"""Assembles a process: broker, store, services and the consumers of the requested roles.

`ragloop up` runs every role in one process on the embedded broker; `ragloop worker ROLE` runs
one role against the configured broker. Either way the handlers are the same functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog

from schemas.settings import Settings
from streams.brokers import make_broker
from streams.consumer import EventConsumer, RetryPolicy
from streams.publisher import Publisher
from streams.services import Services
from streams.store import Store
from streams.topics import all_topic_names
from streams.workers import agent, evaluation, feedback, ingest, trainer

log = structlog.get_logger(__name__)

ConsumerFactory = Callable[[Services, Publisher], list[EventConsumer]]
ROLES: dict[str, ConsumerFactory] = {
    "ingest": ingest.consumers,
    "agent": agent.consumers,
    "eval": evaluation.consumers,
    "feedback": feedback.consumers,
    "trainer": trainer.consumers,
}
# What each role loads before taking traffic, so the first request is not the slow one.
WARM_UP: dict[str, tuple[str, ...]] = {"ingest": ("pipeline",), "agent": ("agent",), "trainer": ("engine",)}


class Runtime:
    def __init__(self, settings: Settings, roles: Sequence[str]) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; choose from {sorted(ROLES)}")
        self.settings = settings
        self.roles = list(roles)
        self.store = Store.from_settings(settings)
        self.store.ensure_base_version(settings.model_family)
        self.broker = make_broker(settings)
        self.publisher = Publisher(self.broker)
        self.services = Services(settings, self.store)
        retry = RetryPolicy(settings.worker_max_retries, settings.worker_retry_backoff_s)
        for role in self.roles:
            for consumer in ROLES[role](self.services, self.publisher):
                consumer.bind(self.broker, self.store, retry)

    async def start(self, *, warm: bool = True) -> None:
        if not self.settings.is_embedded_broker:
            from streams.brokers.kafka import create_topics

            names = [self.settings.topic_prefix + name for name in all_topic_names()]
            await asyncio.to_thread(create_topics, self.settings.kafka_bootstrap, names, partitions=self.settings.kafka_partitions)
        if warm:
            names = [name for role in self.roles for name in WARM_UP.get(role, ())]
            await asyncio.to_thread(self.services.warm, *names)
        await self.broker.start()
        log.info("runtime started", roles=self.roles, broker=self.settings.broker_url, search=self.settings.search_url)

    async def stop(self) -> None:
        await self.broker.stop()
        self.services.close()
