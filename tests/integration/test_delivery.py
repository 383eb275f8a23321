"""The delivery contract, identical on the embedded broker and on real Kafka, and identical for a
consumer that handles one event at a time and one that handles batches (`handle_many`):
effects happen, poison goes to the DLQ without stopping the worker, failures retry then
dead-letter, duplicates of an event have no second effect, and one key's events keep their order."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest

from schemas.database import Database
from schemas.events import DocumentIngest
from schemas.settings import Settings
from streams.brokers import make_broker
from streams.consumer import EventConsumer, PermanentError, RetryPolicy
from streams.publisher import Publisher
from streams.topics import TOPICS, all_topic_names
from tests.support import eventually, read_topic


@pytest.fixture(params=["embedded", "kafka", "embedded-batched", "kafka-batched"])
def broker_settings(request: pytest.FixtureRequest, settings: Settings, unique: str) -> Settings:
    batch = 16 if request.param.endswith("-batched") else 1
    settings = settings.override(ingest_batch=batch)
    if request.param.startswith("kafka"):
        return settings.override(broker_url=request.getfixturevalue("kafka_url"), topic_prefix=f"t{unique}.")
    return settings


class Harness:
    """One consumer group on `docs.ingest` whose handler records effects and fails on demand;
    with `settings.ingest_batch > 1` it also handles batches, reporting failures per event. While
    `gate` is closed every event waits at the handler's door, so later events pile up in the broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database.from_settings(settings)
        self.broker = make_broker(settings)
        self.publisher = Publisher(self.broker)
        self.effects: Counter[str] = Counter()
        self.failures_left: dict[str, int] = {}
        self.dead: list[tuple[str, str]] = []
        self.texts: defaultdict[str, list[str]] = defaultdict(list)
        self.batches: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.held = 0  # events that reached the gate (and wait there while it is closed)

    async def handle(self, event: DocumentIngest) -> None:
        self.held += 1
        await self.gate.wait()
        if event.text == "permanent":
            raise PermanentError("this document can never be indexed")
        if self.failures_left.get(event.document_id, 0) > 0:
            self.failures_left[event.document_id] -= 1
            raise RuntimeError(f"transient failure for {event.document_id}")
        self.effects[event.document_id] += 1
        self.texts[event.document_id].append(event.text)

    async def handle_many(self, events: list[DocumentIngest]) -> dict[str, Exception]:
        self.batches.append(len(events))
        failures: dict[str, Exception] = {}
        for event in events:
            try:
                await self.handle(event)
            except Exception as error:  # noqa: BLE001 — reported back, like a real batch handler
                failures[event.event_id] = error
        return failures

    async def on_dead_letter(self, event: DocumentIngest, reason: str) -> None:
        self.dead.append((event.document_id, reason))

    async def __aenter__(self) -> Harness:
        if not self.settings.broker.is_embedded:
            from streams.brokers.kafka import create_topics

            names = [self.settings.broker.topic_prefix + n for n in all_topic_names()]
            await asyncio.to_thread(create_topics, self.settings.broker.kafka_bootstrap, names, partitions=3)
        batched = self.settings.ingest.batch > 1
        EventConsumer(TOPICS["docs.ingest"], "test.delivery", self.handle, on_dead_letter=self.on_dead_letter,
                      handle_many=self.handle_many if batched else None, max_batch=self.settings.ingest.batch).bind(
            self.broker, self.db, RetryPolicy(max_retries=2, backoff_s=0.01))
        await self.broker.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.broker.stop()

    def dlq(self) -> list[dict]:
        return read_topic(self.settings, self.broker, "docs.ingest.dlq")


async def test_published_event_is_consumed_and_its_effect_happens(broker_settings: Settings) -> None:
    async with Harness(broker_settings) as h:
        await h.publisher.publish(DocumentIngest(document_id="doc-1", text="hello"))
        await eventually(lambda: h.effects["doc-1"] == 1, what="the effect")


async def test_poison_message_goes_to_dlq_and_the_worker_keeps_going(broker_settings: Settings) -> None:
    async with Harness(broker_settings) as h:
        await h.broker.publish("docs.ingest", b"{not json", key="bad")
        await h.broker.publish("docs.ingest", b'{"document_id": "d", "txt": "typo"}', key="bad")
        await h.publisher.publish(DocumentIngest(document_id="after-poison", text="fine"))
        await eventually(lambda: h.effects["after-poison"] == 1, what="the good event after the poison")
        await eventually(lambda: len(h.dlq()) == 2, timeout=30, what="two dead letters")
        letters = h.dlq()
        assert all(letter["reason"].startswith("schema validation failed") for letter in letters)
        assert any("txt: Extra inputs are not permitted" in letter["reason"] for letter in letters)
        assert {letter["payload"] for letter in letters} == {"{not json", '{"document_id": "d", "txt": "typo"}'}


async def test_transient_failure_is_retried_then_succeeds(broker_settings: Settings) -> None:
    async with Harness(broker_settings) as h:
        h.failures_left["flaky"] = 2
        await h.publisher.publish(DocumentIngest(document_id="flaky", text="x"))
        await eventually(lambda: h.effects["flaky"] == 1, what="success after two retries")
        assert h.failures_left["flaky"] == 0 and not h.dead


async def test_exhausted_retries_dead_letter_with_the_reason(broker_settings: Settings) -> None:
    async with Harness(broker_settings) as h:
        h.failures_left["broken"] = 99
        await h.publisher.publish(DocumentIngest(document_id="broken", text="x"))
        await h.publisher.publish(DocumentIngest(document_id="never", text="permanent"))
        await eventually(lambda: len(h.dead) == 2, what="both events dead-lettered")
        reasons = dict(h.dead)
        assert "RuntimeError: transient failure for broken" in reasons["broken"]
        assert "PermanentError" in reasons["never"]
        await eventually(lambda: len(h.dlq()) == 2, timeout=30, what="two DLQ messages")
        attempts = {letter["key"]: letter["attempts"] for letter in h.dlq()}
        assert attempts == {"broken": 3, "never": 1}  # 1 try + 2 retries; permanent errors are not retried


async def test_duplicate_event_ids_have_one_effect(broker_settings: Settings) -> None:
    async with Harness(broker_settings) as h:
        event = DocumentIngest(document_id="dup", text="original")
        for _ in range(3):
            await h.publisher.publish(event)
        # A new event for the same document has the same key, so it is handled after the copies:
        # once its effect is seen, every copy has been handled (or skipped) already.
        await h.publisher.publish(DocumentIngest(document_id="dup", text="marker"))
        await eventually(lambda: "marker" in h.texts["dup"], what="the marker behind the copies")
        assert h.texts["dup"] == ["original", "marker"]


async def test_events_with_one_key_are_handled_in_publish_order(broker_settings: Settings) -> None:
    async with Harness(broker_settings) as h:
        for n in range(20):
            await h.publisher.publish(DocumentIngest(document_id="ordered", text=f"v{n}", event_id=f"ord-{n}"))
            await h.publisher.publish(DocumentIngest(document_id=f"other-{n}", text="x"))
        await eventually(lambda: h.effects["ordered"] == 20, what="all 20 versions")
        assert h.texts["ordered"] == [f"v{n}" for n in range(20)]


async def test_waiting_events_are_handled_as_batches(broker_settings: Settings) -> None:
    if broker_settings.ingest.batch == 1:
        pytest.skip("batches are for consumers with handle_many")
    async with Harness(broker_settings) as h:
        h.gate.clear()
        await h.publisher.publish(DocumentIngest(document_id="pile-0", text="x"))
        await eventually(lambda: h.held >= 1, what="the first event held at the gate")
        for n in range(1, 12):  # published while the consumer is held: they pile up behind it
            await h.publisher.publish(DocumentIngest(document_id=f"pile-{n}", text="x"))
        h.gate.set()
        await eventually(lambda: sum(h.effects[f"pile-{n}"] for n in range(12)) == 12, what="every piled-up event")
        assert max(h.batches, default=1) > 1, h.batches
        assert all(size <= broker_settings.ingest.batch for size in h.batches)
