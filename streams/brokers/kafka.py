"""Kafka through FastStream (aiokafka) for consuming and publishing, kafka-python for admin.

Offsets are committed only after the handler returns (the effect is durable); a handler that
raises makes FastStream seek back so the message is delivered again. Consumers that must see
every message in every process (model hot-swap) use a group of their own, starting at the end.
Topic and consumer-group names both carry `RAGLOOP_TOPIC_PREFIX`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Literal

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker as FastStreamKafkaBroker, KafkaMessage
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.protocol.consumer.offsets import OffsetSpec

from streams.brokers.base import RawMessage, Subscription

log = structlog.get_logger(__name__)


def _raw_body(message: KafkaMessage) -> object:
    return message.body


class KafkaBroker:
    def __init__(self, bootstrap: list[str], *, topic_prefix: str = "", max_message_bytes: int = 1024 * 1024) -> None:
        self.bootstrap = bootstrap
        self.prefix = topic_prefix
        self.max_message_bytes = max_message_bytes
        self._subscriptions: list[Subscription] = []
        self._broker = self._build()

    def _build(self) -> FastStreamKafkaBroker:
        # The producer's limit is RAGLOOP_MAX_MESSAGE_BYTES, the figure the gateway sizes events by (413 above it).
        return FastStreamKafkaBroker(self.bootstrap, logger=None, max_request_size=self.max_message_bytes)

    def subscribe(self, subscription: Subscription) -> None:
        self._subscriptions.append(subscription)
        self._register(subscription)

    def _register(self, subscription: Subscription) -> None:
        # Groups carry the topic prefix too, so deployments (or test runs) sharing one Kafka
        # under different prefixes never join each other's groups and rebalance one another.
        group = self.prefix + subscription.group
        offset_reset: Literal["earliest", "latest"] = "earliest"
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
        """Connect and start consuming. A start that failed (Kafka unreachable) leaves a half-started
        client behind, so the next try begins from a fresh one with the same subscriptions."""
        try:
            await self._broker.start()
        except Exception:
            with contextlib.suppress(Exception):
                await self._broker.stop()
            self._broker = self._build()
            for subscription in self._subscriptions:
                self._register(subscription)
            raise

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
    """Messages not yet committed per (consumer group, topic): end offset minus committed offset.

    Admin calls only (ListGroups, OffsetFetch, ListOffsets), so asking costs no consumer and joins
    no group. A partition a group has never committed on is not counted: the group has not
    started there, and Kafka keeps no offset to subtract from.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ragloop-lag")
    try:
        groups = sorted(g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(group_prefix))
        if not groups:
            return {}
        committed = {(group, tp): meta.offset
                     for group, partitions in admin.list_group_offsets(groups).items()
                     for tp, meta in partitions.items()
                     if tp.topic.startswith(topic_prefix) and meta.offset >= 0}
        partitions = {tp for _, tp in committed}
        ends = admin.list_partition_offsets(dict.fromkeys(partitions, OffsetSpec.LATEST)) if partitions else {}
        lag: dict[tuple[str, str], int] = {}
        for (group, tp), offset in committed.items():
            key = (group, tp.topic.removeprefix(topic_prefix))
            end = ends[tp].offset if tp in ends else offset
            lag[key] = lag.get(key, 0) + max(end - offset, 0)
        return lag
    finally:
        admin.close()
