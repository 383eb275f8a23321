"""`ragloop_consumer_lag` against real Kafka: the value a group really lags by, from the pinned client."""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import REGISTRY

from schemas.settings import Settings
from streams.brokers.kafka import consumer_lag, create_topics
from streams.runtime import Runtime


def _produce_and_commit(bootstrap: list[str], topic: str, group: str, *, produced: int, committed: int) -> None:
    create_topics(bootstrap, [topic], partitions=1)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for n in range(produced):
        producer.send(topic, f"message {n}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(committed, "", -1)})
    finally:
        consumer.close()


def test_lag_is_end_offset_minus_committed_offset(kafka_url: str, unique: str) -> None:
    settings = Settings(broker={"url": kafka_url, "topic_prefix": f"lag{unique}."})
    group = f"ragloop.lagtest{unique}"
    _produce_and_commit(settings.broker.kafka_bootstrap, f"lag{unique}.docs.ingest", group, produced=7, committed=2)

    lags = consumer_lag(settings.broker.kafka_bootstrap, topic_prefix=settings.broker.topic_prefix)

    assert lags[(group, "docs.ingest")] == 5


async def test_metrics_gauge_reports_the_lag(kafka_url: str, unique: str, tmp_path) -> None:
    """What `/metrics` exports: the gateway refreshes the gauge from the same admin calls."""
    settings = Settings(home=tmp_path, broker={"url": kafka_url, "topic_prefix": f"lagm{unique}."}, search={"url": "embedded://"})
    group = f"lagm{unique}.ragloop.metric"  # groups carry the topic prefix, as the workers' do
    _produce_and_commit(settings.broker.kafka_bootstrap, f"lagm{unique}.chat.requests", group, produced=4, committed=1)

    runtime = Runtime(settings, [])
    try:
        await runtime.refresh_lag_metrics(min_interval_s=0)
    finally:
        runtime.services.close()

    assert REGISTRY.get_sample_value("ragloop_consumer_lag", {"group": group, "topic": "chat.requests"}) == 3
