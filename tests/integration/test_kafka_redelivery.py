"""A worker killed mid-message never committed it: a new worker gets it again and the effect
lands exactly once (content-hash chunk ids + the processed-event ledger)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from indexing.backends.base import open_backend
from models.embedder import TextEmbedder
from schemas.events import DocumentIngest
from schemas.settings import Settings
from streams.brokers.kafka import KafkaBroker, create_topics
from streams.publisher import Publisher
from streams.store import Store
from streams.topics import all_topic_names
from tests.e2e.conftest import Processes, processes

SENTENCE = "Paragraph {n} describes experiment {n} in detail, with measurements, methods and a careful discussion of the results. "


async def _publish(settings: Settings, events: list[DocumentIngest]) -> None:
    broker = KafkaBroker(settings.kafka_bootstrap, topic_prefix=settings.topic_prefix)
    await broker.start()
    try:
        for event in events:
            await Publisher(broker).publish(event)
    finally:
        await broker.stop()


def _wait(predicate, timeout: float, what: str, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs.assert_alive()
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_redelivers_and_the_effect_happens_once(tmp_path: Path, unique: str, kafka_url: str) -> None:
    settings = Settings(home=tmp_path / "home", broker_url=kafka_url, topic_prefix=f"kill{unique}.")
    create_topics(settings.kafka_bootstrap, [settings.topic_prefix + n for n in all_topic_names()], partitions=1)
    big = DocumentIngest(document_id="big", text="\n\n".join(SENTENCE.format(n=n) * 3 for n in range(1500)))
    small = [DocumentIngest(document_id=f"small-{n}", text=f"Small note number {n} about topic {n}.") for n in range(10)]
    asyncio.run(_publish(settings, [big, *small]))
    store = Store.from_settings(settings)
    env = {"RAGLOOP_HOME": str(settings.home), "RAGLOOP_BROKER_URL": kafka_url, "RAGLOOP_TOPIC_PREFIX": settings.topic_prefix}

    with processes(env, tmp_path / "logs") as procs:
        procs.start("worker-1", "worker", "ingest")
        _wait(lambda: (row := store.get_document("big")) is not None and row.status == "indexing", 240, "the big document to be in flight", procs)
        procs.kill("worker-1")  # SIGKILL: no graceful shutdown, no commit
        assert store.get_document("big").status == "indexing"
        assert not store.already_processed("ragloop.ingest", big.event_id)

        procs.start("worker-2", "worker", "ingest")
        # Done means indexed *and* recorded in the ledger: the ledger is written after the effect.
        _wait(lambda: all((r := store.get_document(d.document_id)) is not None and r.status == "indexed" for d in [big, *small])
              and store.processed_among("ragloop.ingest", [d.event_id for d in [big, *small]]) == {d.event_id for d in [big, *small]},
              300, "every document indexed and recorded as processed after the restart", procs)

    rows = [store.get_document(d.document_id) for d in [big, *small]]
    backend = open_backend(settings.search_url, home=settings.home, dimension=TextEmbedder().dimension)
    try:
        assert backend.count() == sum(row.chunks for row in rows)  # nothing indexed twice
    finally:
        backend.close()
