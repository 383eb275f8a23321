"""Broker factory: the URL scheme picks the transport, the handlers stay the same.

Every broker does what `Broker` declares. Only the in-process one can also say how much is pending,
wait until every delivery is handled, and show what was published (`join`, `pending`, `retained`):
a caller that wants those asks `isinstance(broker, EmbeddedBroker)`, which the type checker follows.
"""

from __future__ import annotations

from schemas.settings import Settings
from streams.brokers.base import Broker
from streams.brokers.embedded import EmbeddedBroker

__all__ = ["Broker", "EmbeddedBroker", "make_broker"]


def make_broker(settings: Settings) -> Broker:
    if settings.broker.is_embedded:
        broker = settings.broker
        return EmbeddedBroker(partitions=broker.kafka_partitions, retained=broker.embedded_retained,
                              retained_bytes=broker.embedded_retained_bytes, queue_max=broker.embedded_queue_max,
                              publish_timeout_s=broker.embedded_publish_timeout_s)
    from streams.brokers.kafka import KafkaBroker  # imported lazily: embedded mode needs no Kafka client

    return KafkaBroker(settings.broker.kafka_bootstrap, topic_prefix=settings.broker.topic_prefix,
                       max_message_bytes=settings.broker.max_message_bytes)
