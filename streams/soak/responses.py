"""How many different answers each task got on `chat.responses`, read back from Kafka.

One task answered by two agents at once (a lease taken over while the first still generated) shows
up here as two distinct answers: the duplicated effect the ledger counts for chats. A redelivered
copy of the same response event is not one (same event id, same answer).
"""

from __future__ import annotations

import json
from collections import defaultdict

from schemas.settings import Settings
from streams.topics import TOPICS


def answers_per_task(settings: Settings, *, timeout_s: float = 5) -> dict[str, int] | None:
    """Distinct answers per task id so far; None on the embedded broker (its log lives in the serving process)."""
    if settings.broker.is_embedded:
        return None
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.broker.topic_prefix + TOPICS["chat.responses"].name, bootstrap_servers=settings.broker.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000), group_id=None)
    answers: dict[str, set[str]] = defaultdict(set)
    try:
        for record in consumer:
            event = json.loads(record.value)
            answers[event["task_id"]].add(event.get("answer", ""))
    finally:
        consumer.close()
    return {task_id: len(texts) for task_id, texts in answers.items()}
