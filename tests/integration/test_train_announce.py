"""`ragloop train --from-feedback` announces the version it moved: with a broker configured, the
canary's `model.updated` goes out (through the outbox) so running agents serve it at once; with the
embedded broker nobody in the process could hear it, and nothing is written.
"""

from __future__ import annotations

import pytest

from models.registry import ModelRegistry
from schemas.database import Database
from schemas.outbox_store import OutboxStore
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.brokers.kafka import KafkaBroker, create_topics
from streams.cli.announce import announce
from tests.integration.test_cli_kafka import delete_topics
from tests.support import read_topic


def canary(db: Database, family: str, tenant: str) -> str:
    registry = ModelRegistry(db)
    registry.ensure_base_version(family)
    version = f"{family}@lora-{'c0ffee':0>12}"
    registry.register_candidate(ModelVersionRecord(version=version, family=family, tenant=tenant, state="candidate"), actor="auto:gate", reason="trained")
    registry.start_canary(version, share=0.2, actor="auto:gate", reason="gate passed", numbers={"gate_candidate": 1.0})
    return version


def test_a_canary_started_by_the_cli_is_announced_on_the_configured_broker(settings: Settings, kafka_url: str, unique: str) -> None:
    settings = settings.override(broker_url=kafka_url, topic_prefix=f"tra{unique}.", kafka_partitions=1)
    create_topics(settings.broker.kafka_bootstrap, [settings.broker.topic_prefix + "model.updated"], partitions=1)
    try:
        db = Database.from_settings(settings)
        version = canary(db, settings.llm.model_family, f"acme{unique}")
        sent = announce(settings, db, ModelRegistry(db), version, tenant=f"acme{unique}")
        broker = KafkaBroker(settings.broker.kafka_bootstrap, topic_prefix=settings.broker.topic_prefix)
        events = [e for e in read_topic(settings, broker, "model.updated", timeout_s=20) if e["version"] == version]
    finally:
        delete_topics(kafka_url, settings.broker.topic_prefix)
    assert [e["event_id"] for e in events] == sent and [e["state"] for e in events] == ["canary"]
    assert events[0]["metrics"]["gate_candidate"] == 1.0 and events[0]["canary_share"] == pytest.approx(0.2)
    assert OutboxStore(db).unsent(settings.broker.topic_prefix) == []  # sent now, not left for a relay


def test_with_the_embedded_broker_nothing_is_announced(settings: Settings, unique: str) -> None:
    db = Database.from_settings(settings)
    version = canary(db, settings.llm.model_family, f"acme{unique}")
    assert announce(settings, db, ModelRegistry(db), version, tenant=f"acme{unique}") == []
    assert OutboxStore(db).unsent(settings.broker.topic_prefix) == []
