"""A version moved from a CLI process is announced: the registry writes the move's `model.updated` into
the outbox in the move's own transaction, and with a broker configured `deliver` sends it now, so
running agents serve it at once; with the embedded broker nobody in the CLI's process could hear it,
so the entry waits, unsent, for the running `ragloop up`'s relay. A process that dies between the
move's commit and the send loses nothing: the entry is already there.
"""

from __future__ import annotations

import pytest

from models.registry import ModelRegistry
from schemas.database import Database
from schemas.outbox_store import OutboxStore
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.brokers.kafka import KafkaBroker, create_topics
from streams.cli.announce import deliver
from tests.integration.test_cli_kafka import delete_topics
from tests.support import read_topic


def canary(db: Database, family: str, tenant: str, scope: str) -> str:
    registry = ModelRegistry(db, outbox_scope=scope)
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
        version = canary(db, settings.llm.model_family, f"acme{unique}", settings.broker.topic_prefix)
        owed = [e.event_id for e in OutboxStore(db).unsent(settings.broker.topic_prefix)]
        sent = deliver(settings, db)
        broker = KafkaBroker(settings.broker.kafka_bootstrap, topic_prefix=settings.broker.topic_prefix)
        events = [e for e in read_topic(settings, broker, "model.updated", timeout_s=20) if e["version"] == version]
    finally:
        delete_topics(kafka_url, settings.broker.topic_prefix)
    assert [e["event_id"] for e in events] == sent == owed and [e["state"] for e in events] == ["canary"]
    assert events[0]["tenant"] == f"acme{unique}" and events[0]["version_tenant"] == f"acme{unique}"
    assert events[0]["metrics"]["gate_candidate"] == 1.0 and events[0]["canary_share"] == pytest.approx(0.2)
    assert OutboxStore(db).unsent(settings.broker.topic_prefix) == []  # sent now, not left for a relay


def test_with_the_embedded_broker_the_move_waits_in_the_outbox_for_a_relay(settings: Settings, unique: str) -> None:
    db = Database.from_settings(settings)
    version = canary(db, settings.llm.model_family, f"acme{unique}", settings.broker.topic_prefix)
    assert deliver(settings, db) == []
    owed = [(e.type, e.aggregate_id) for e in OutboxStore(db).unsent(settings.broker.topic_prefix)]
    assert owed == [("model.updated", version)]


def test_a_move_without_an_outbox_scope_announces_nothing(settings: Settings, unique: str) -> None:
    """Tools that only read (and tests that seed versions) build the registry without a scope: nothing is owed."""
    db = Database.from_settings(settings)
    registry = ModelRegistry(db)
    family, tenant = settings.llm.model_family, f"acme{unique}"
    registry.ensure_base_version(family)
    version = f"{family}@lora-{'5eed':0>12}"
    registry.register_candidate(ModelVersionRecord(version=version, family=family, tenant=tenant, state="candidate"), actor="t", reason="t")
    registry.start_canary(version, share=0.2, actor="t", reason="t")
    assert OutboxStore(db).unsent(settings.broker.topic_prefix) == []
