"""Assembles a process: broker, stores, services and the consumers of the requested roles.

`ragloop up` runs every role in one process on the embedded broker; `ragloop worker ROLE` runs
one role against the configured broker. Either way the handlers are the same functions.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Sequence

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from schemas.settings import Settings, redact_url
from streams.brokers import EmbeddedBroker, make_broker
from streams.consumer import EventConsumer, RetryPolicy
from streams.metrics import CONSUMER_LAG
from streams.outbox_relay import Outbox
from streams.patience import is_transient, patiently, patiently_async
from streams.publisher import Publisher
from streams.services import Services
from streams.stores import Stores
from streams.supervision import BackgroundLoop, supervise
from streams.topics import all_topic_names

log = structlog.get_logger(__name__)

ConsumerFactory = Callable[[Services, Publisher], list[EventConsumer]]
BackgroundFactory = Callable[[Services, Publisher], list[BackgroundLoop]]
# Role → module with `consumers(services, publisher)` (and optionally `background(...)`, loops that
# run beside the consumers); imported only when the role runs, so a process pays for (and needs)
# only its own role's dependencies.
ROLES: dict[str, str] = {
    "ingest": "streams.workers.ingest",
    "agent": "streams.workers.agent",
    "eval": "streams.workers.evaluation",
    "feedback": "streams.workers.feedback",
    "trainer": "streams.workers.trainer",
    "callbacks": "streams.workers.callbacks",
    "images": "streams.workers.images",
}
# What each role loads before taking traffic, so the first request is not the slow one.
WARM_UP: dict[str, tuple[str, ...]] = {"ingest": ("pipeline",), "agent": ("agent", "checkpointer"), "trainer": ("engine",)}


class Runtime:
    def __init__(self, settings: Settings, roles: Sequence[str]) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; choose from {sorted(ROLES)}")
        self.settings = settings
        self.roles = list(roles)
        patience_s = settings.workers.start_patience_s
        self.stores = patiently("the database", lambda: Stores.from_settings(settings), patience_s=patience_s, retry_on=(OperationalError,))
        patiently("the database", lambda: self.stores.registry.ensure_base_version(settings.llm.model_family), patience_s=patience_s,
                  retry_on=(OperationalError,))
        self.broker = make_broker(settings)
        self.publisher = Publisher(self.broker)
        self.outbox = Outbox(self.stores.db, self.publisher, settings)  # accepted work's events: see streams/outbox_relay.py
        self.services = Services(settings, self.stores)
        self.retry = RetryPolicy(settings.workers.max_retries, settings.workers.retry_backoff_s)
        self._background: list[BackgroundLoop] = [self.outbox.relay]
        self._tasks: list[asyncio.Task[None]] = []
        self._lag_checked = 0.0
        self.consumed: list[str] = []
        for role in self.roles:
            module = importlib.import_module(ROLES[role])
            for consumer in module.consumers(self.services, self.publisher):
                self.bind(consumer)
            if hasattr(module, "background"):
                self.add_background(*module.background(self.services, self.publisher))

    def bind(self, consumer: EventConsumer) -> None:
        """Add a consumer (before `start`): roles bind theirs, the gateway binds its token listener."""
        consumer.bind(self.broker, self.stores.db, self.retry)
        self.consumed.append(consumer.topic.name)

    def add_background(self, *loops: BackgroundLoop) -> None:
        """Add loops to run beside the consumers (before `start`); each runs supervised (restarted after an error)."""
        self._background.extend(loops)

    def describe(self) -> str:
        """What this process consumes and the services it uses, for its first line of output (no secrets)."""
        topics = ", ".join(dict.fromkeys(self.consumed)) or "nothing"
        database = make_url(self.settings.sqlalchemy_url).render_as_string(hide_password=True)
        return f"consuming {topics} from {redact_url(self.settings.broker.url)}; search {redact_url(self.settings.search.url)}; database {database}"

    async def start(self, *, warm: bool = True) -> None:
        if not self.settings.broker.is_embedded:
            from streams.brokers.kafka import create_topics

            names = [self.settings.broker.topic_prefix + name for name in all_topic_names()]
            await patiently_async("the broker", lambda: asyncio.to_thread(create_topics, self.settings.broker.kafka_bootstrap, names,
                                                                          partitions=self.settings.broker.kafka_partitions),
                                  patience_s=self.settings.workers.start_patience_s)
        if warm:
            # The search index and the database are opened here: a process restarted while either is
            # down waits for it like it waits for the broker, instead of exiting (what is already
            # loaded, such as the embedder, stays loaded between tries).
            names = [name for role in self.roles for name in WARM_UP.get(role, ())]
            await asyncio.to_thread(patiently, "a service it warms up", lambda: self.services.warm(*names),
                                    patience_s=self.settings.workers.start_patience_s, retry_if=is_transient)
        await patiently_async("the broker", self.broker.start, patience_s=self.settings.workers.start_patience_s)
        self._tasks = [asyncio.create_task(supervise(name, loop), name=name)
                       for loop in self._background for name in [getattr(loop, "__name__", "background")]]
        log.info("runtime started", roles=self.roles, broker=redact_url(self.settings.broker.url), search=redact_url(self.settings.search.url))

    async def refresh_lag_metrics(self, *, min_interval_s: float = 10.0) -> None:
        """Consumer lag for `/metrics`: Kafka group offsets (throttled), or the embedded broker's backlog."""
        if isinstance(self.broker, EmbeddedBroker):
            CONSUMER_LAG.labels("embedded", "all").set(self.broker.pending())
            return
        now = time.monotonic()
        if now - self._lag_checked < min_interval_s:
            return
        self._lag_checked = now
        from streams.brokers.kafka import consumer_lag

        try:
            prefix = self.settings.broker.topic_prefix
            lags = await asyncio.to_thread(consumer_lag, self.settings.broker.kafka_bootstrap, group_prefix=f"{prefix}ragloop.", topic_prefix=prefix)
        except Exception as error:  # noqa: BLE001 — metrics must never take the API down
            log.warning("consumer lag unavailable", error=repr(error))
            return
        for (group, topic), lag in lags.items():
            CONSUMER_LAG.labels(group, topic).set(lag)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.stop()
        self.services.close()
