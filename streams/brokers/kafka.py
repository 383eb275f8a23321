"""Kafka through FastStream (aiokafka) for consuming and publishing, kafka-python for admin.

Offsets are committed only after the handler returns (the effect is durable); a handler that
raises makes FastStream seek back so the message is delivered again. Consumers that must see
every message in every process (model hot-swap) use a group of their own, starting at the end.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker as FastStreamKafkaBroker
from faststream.kafka import KafkaMessage
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.brokers.base import RawMessage, Subscription

log = structlog.get_logger(__name__)


def _raw_body(message: KafkaMessage) -> object:
    return message.body


class KafkaBroker:
    def __init__(self, bootstrap: list[str], *, topic_prefix: str = "") -> None:
        self.bootstrap = bootstrap
        self.prefix = topic_prefix
        self._broker = FastStreamKafkaBroker(bootstrap, logger=None)

    @property
    def faststream(self) -> FastStreamKafkaBroker:
        """The underlying FastStream broker (AsyncAPI docs are generated from it)."""
        return self._broker

    def subscribe(self, subscription: Subscription) -> None:
        group = subscription.group
        offset_reset = "earliest"
        if subscription.broadcast:
            group = f"{group}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
            offset_reset = "latest"
        handler = subscription.handler

        async def consume(body: object, message: KafkaMessage) -> None:
            records = message.raw_message if isinstance(message.raw_message, tuple) else (message.raw_message,)
            await handler([self._raw(record) for record in records])

        batch = subscription.max_batch > 1
        self._broker.subscriber(
            self.prefix + subscription.topic,
            group_id=group,
            auto_offset_reset=offset_reset,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_poll_interval_ms=int(subscription.max_processing_s * 1000),
            max_poll_records=subscription.max_batch,
            batch=batch,
            max_records=subscription.max_batch if batch else None,
            decoder=_raw_body,
            title=f"{subscription.group}:{subscription.topic}",
        )(consume)

    def _raw(self, record: ConsumerRecord) -> RawMessage:
        key = record.key.decode() if isinstance(record.key, bytes) else record.key
        headers = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in (record.headers or [])}
        return RawMessage(record.topic.removeprefix(self.prefix), key, record.value or b"", headers)

    async def start(self) -> None:
        await self._broker.start()

    async def stop(self) -> None:
        await self._broker.stop()

    async def publish(self, topic: str, value: bytes, *, key: str | None = None, headers: dict[str, str] | None = None) -> None:
        await self._broker.publish(value, topic=self.prefix + topic, key=key.encode() if key else None, headers=headers or {})


def create_topics(bootstrap: list[str], names: Iterable[str], *, partitions: int, replication: int = 1) -> list[str]:
    """Create missing topics; returns the names that were created (existing ones are left alone)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ragloop-admin")
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        created = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=replication)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


def consumer_lag(bootstrap: list[str], *, group_prefix: str = "ragloop.", topic_prefix: str = "") -> dict[tuple[str, str], int]:
    """Messages not yet committed per (consumer group, topic): end offset minus committed offset."""
    from kafka import KafkaConsumer

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ragloop-lag")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        lag: dict[tuple[str, str], int] = {}
        groups = [g[0] if isinstance(g, tuple) else g.group for g in admin.list_consumer_groups()]
        for group in groups:
            if not group.startswith(group_prefix):
                continue
            committed = {tp: meta.offset for tp, meta in admin.list_consumer_group_offsets(group).items()
                         if tp.topic.startswith(topic_prefix)}
            if not committed:
                continue
            ends = consumer.end_offsets(list(committed))
            for tp, offset in committed.items():
                key = (group, tp.topic.removeprefix(topic_prefix))
                lag[key] = lag.get(key, 0) + max(ends.get(tp, offset) - max(offset, 0), 0)
        return lag
    finally:
        consumer.close()
        admin.close()
