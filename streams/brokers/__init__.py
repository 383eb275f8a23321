"""Broker factory: the URL scheme picks the transport, the handlers stay the same."""

from __future__ import annotations

from schemas.settings import Settings
from streams.brokers.base import Broker
from streams.brokers.embedded import EmbeddedBroker


def make_broker(settings: Settings) -> Broker:
    if settings.broker.is_embedded:
        return EmbeddedBroker(partitions=settings.broker.kafka_partitions)
    from streams.brokers.kafka import KafkaBroker  # imported lazily: embedded mode needs no Kafka client

    return KafkaBroker(settings.broker.kafka_bootstrap, topic_prefix=settings.broker.topic_prefix)
