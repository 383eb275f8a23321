"""What the schema fuzzing found on PostgreSQL (issue #11): the consumer's dead-lettering of any bytes
must work on the cluster database too, where text columns refuse NUL bytes."""

from __future__ import annotations

import asyncio

import pytest

from schemas.database import Database
from schemas.events import Event
from schemas.settings import Settings
from streams.brokers.base import RawMessage
from streams.consumer import EventConsumer, RetryPolicy
from streams.dead_letters import DeadLetterStore
from streams.topics import TOPICS
from tests.unit.test_fuzz_schemas import RecordingBroker, _noop


@pytest.mark.parametrize(("value", "key"), [(b"\x00 not json", None), (b"{}", "key\x00")], ids=["nul-in-value", "nul-in-key"])
def test_a_nul_byte_is_dead_lettered_on_postgresql_too(value: bytes, key: str | None, settings: Settings, postgres_url: str) -> None:
    letters = DeadLetterStore(Database.from_settings(settings.override(database_url=postgres_url)))
    broker = RecordingBroker()
    consumer: EventConsumer[Event] = EventConsumer(TOPICS["docs.delete"], "fuzz", _noop)
    assert asyncio.run(consumer._validate(RawMessage("docs.delete", key, value), broker, letters, RetryPolicy(0, 0))) is None  # type: ignore[arg-type]
    assert len(broker.published) == 1
