"""A worker killed mid-batch never committed it, so a new worker gets the whole batch again: what the
dead worker had finished is skipped (the processed-event ledger), what it had in flight is done, and
every effect lands exactly once.

The index cannot show a double effect (chunk ids are content hashes, so indexing twice overwrites);
the ingest handler's announcements can: it publishes one `docs.indexed` per version it indexes, from
whichever process did the work, and Kafka keeps them after a SIGKILL."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from kafka import KafkaAdminClient, TopicPartition

from indexing.backends import open_backend
from indexing.document_store import DocumentStore
from models.embedder import TextEmbedder
from schemas.database import Database
from schemas.events import DocumentIngest
from schemas.settings import Settings
from streams.brokers.kafka import KafkaBroker, create_topics
from streams.ledger import EventLedger
from streams.publisher import Publisher
from streams.topics import all_topic_names
from streams.workers.ingest import GROUP
from tests.e2e.conftest import processes
from tests.support import read_topic

SENTENCE = "Paragraph {n} describes experiment {n} in detail, with measurements, methods and a careful discussion of the results. "


async def _publish(settings: Settings, events: list[DocumentIngest]) -> None:
    broker = KafkaBroker(settings.broker.kafka_bootstrap, topic_prefix=settings.broker.topic_prefix)
    await broker.start()
    try:
        for event in events:
            await Publisher(broker).publish(event)
    finally:
        await broker.stop()


def _committed_offset(settings: Settings, topic: str) -> int:
    """The ingest group's committed offset on a one-partition topic (-1: nothing committed yet)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.broker.kafka_bootstrap, client_id="ragloop-test")
    try:
        partition = TopicPartition(settings.broker.topic_prefix + topic, 0)
        group = settings.broker.topic_prefix + GROUP  # Kafka group ids carry the prefix, as topics do
        committed = admin.list_group_offsets({group: [partition]}).get(group, {}).get(partition)
        return committed.offset if committed is not None else -1
    finally:
        admin.close()


def test_killed_worker_redelivers_and_every_effect_happens_once(tmp_path: Path, unique: str, kafka_url: str) -> None:
    settings = Settings(home=tmp_path / "home", broker={"url": kafka_url, "topic_prefix": f"kill{unique}."})
    create_topics(settings.broker.kafka_bootstrap, [settings.broker.topic_prefix + n for n in all_topic_names()], partitions=1)
    # One batch of two runs: the draft and the notes (distinct keys) are one run; the final version of
    # the report repeats the draft's key, so it is a second run, handled only after the first run's
    # effects and ledger entries are written. The final version is big, so it is still in flight
    # when the worker is killed.
    draft = DocumentIngest(document_id="report", text="A short draft of the report on experiment 1.")
    notes = [DocumentIngest(document_id=f"note-{n}", text=f"Small note number {n} about topic {n}.") for n in range(9)]
    final = DocumentIngest(document_id="report", text="\n\n".join(SENTENCE.format(n=n) * 3 for n in range(500)))
    first_run = [draft, *notes]
    everything = [*first_run, final]
    asyncio.run(_publish(settings, everything))
    db = Database.from_settings(settings)
    store, ledger = DocumentStore(db), EventLedger(db)
    env = {"RAGLOOP_HOME": str(settings.home), "RAGLOOP_BROKER_URL": kafka_url, "RAGLOOP_TOPIC_PREFIX": settings.broker.topic_prefix,
           "RAGLOOP_INGEST_BATCH": "64"}

    def recorded(events: list[DocumentIngest]) -> bool:
        return ledger.processed_among(GROUP, [e.event_id for e in events]) == {e.event_id for e in events}

    with processes(env, tmp_path / "logs") as procs:
        procs.start("worker-1", "worker", "ingest")
        procs.wait_until(lambda: recorded(first_run) and store.get_document("report").status == "indexing",  # type: ignore[union-attr]
                         timeout=240, interval=0.1, what="the first run done and the final report in flight")
        procs.kill("worker-1")  # SIGKILL: no graceful shutdown, no commit
        # What worker-2 will be handed again: the whole batch, including the run already done.
        assert _committed_offset(settings, "docs.ingest") <= 0, "the batch was committed: nothing would be redelivered"
        assert not ledger.already_processed(GROUP, final.event_id)

        procs.start("worker-2", "worker", "ingest")
        # Done means the final version indexed *and* recorded: the ledger is written after the effect.
        procs.wait_until(lambda: recorded(everything) and store.get_document("report").status == "indexed",  # type: ignore[union-attr]
                         timeout=300, what="the final report indexed and recorded after the restart")

    announced = Counter(message["document_id"] for message in read_topic(settings, KafkaBroker(settings.broker.kafka_bootstrap), "docs.indexed"))
    # Each version indexed once: the report twice (draft by worker-1, final by worker-2), each note once.
    assert announced == Counter({"report": 2, **{n.document_id: 1 for n in notes}})
    rows = [store.get_document(d.document_id) for d in [final, *notes]]
    backend = open_backend(settings.search.url, home=settings.home, dimension=TextEmbedder().dimension)
    try:
        assert backend.count() == sum(row.chunks for row in rows if row)  # the draft's chunks were replaced, not left behind
    finally:
        backend.close()
