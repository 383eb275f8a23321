"""The CLI in cluster mode (`kafka://`), against a real Kafka broker: `topics create`, and `ingest` and
`publish` that only publish, while a separate `ragloop worker ingest` process does the work and the
CLI follows the result in the shared database (README: "with kafka:// it publishes and follows")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from indexing.document_store import DocumentStore
from models.registry import ModelRegistry
from schemas.database import Database
from schemas.settings import Settings
from streams.brokers.kafka import KafkaBroker
from streams.topics import all_topic_names
from tests.e2e.conftest import Processes, processes
from tests.integration.cli_harness import Cli, html, web_pages
from tests.support import read_topic

OSTRA = html("The Ostra river", "The Ostra river flows 612 kilometres from the Kessel glacier to the Northern Sea.")


def admin(kafka_url: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=kafka_url.removeprefix("kafka://").split(","), client_id="ragloop-cli-tests")


def delete_topics(kafka_url: str, prefix: str) -> None:
    """Remove the topics this test created (only those: they carry its unique prefix)."""
    client = admin(kafka_url)
    try:
        mine = [name for name in client.list_topics() if name.startswith(prefix)]
        if mine:
            client.delete_topics(mine)
    finally:
        client.close()


def test_topics_create_makes_every_topic_and_its_dead_letter_topic_once(kafka_url: str, unique: str, tmp_path: Path) -> None:
    prefix = f"clitopics{unique}."
    cli = Cli({"RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_BROKER_URL": kafka_url, "RAGLOOP_TOPIC_PREFIX": prefix})
    wanted = [prefix + name for name in all_topic_names()]
    try:
        first = cli.ok("topics", "create", "--partitions", "2", "--replication", "1")
        again = cli.ok("topics", "create")
        client = admin(kafka_url)
        try:
            partitions = {t["name"]: len(t["partitions"]) for t in client.describe_topics(wanted)}
        finally:
            client.close()
    finally:
        delete_topics(kafka_url, prefix)
    assert partitions == {name: 2 for name in wanted}
    assert f"created {len(wanted)} topic(s); 0 already existed" in first.stderr
    assert f"created 0 topic(s); {len(wanted)} already existed" in again.stderr


@dataclass
class Cluster:
    """Kafka with this module's topic prefix, one `ragloop worker ingest` process, and the CLI beside it."""

    cli: Cli
    settings: Settings
    workers: Processes

    def documents(self) -> DocumentStore:
        return DocumentStore(Database.from_settings(self.settings))


@pytest.fixture(scope="module")
def cluster(kafka_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cli-kafka")
    # A prefix of its own: the `unique` fixture is per test, this cluster per module.
    settings = Settings(home=folder / "home", database_url=None, broker={"url": kafka_url, "topic_prefix": f"clik{uuid.uuid4().hex[:10]}."},
                        search={"url": "embedded://"})
    env = {"RAGLOOP_HOME": str(settings.home), "RAGLOOP_BROKER_URL": kafka_url, "RAGLOOP_SEARCH_URL": "embedded://",
           "RAGLOOP_TOPIC_PREFIX": settings.broker.topic_prefix, "RAGLOOP_FETCH_ALLOW_PRIVATE": "true"}  # pages are served on loopback
    # The shared SQLite file is created before two processes open it at once: once, a CLI started
    # beside the worker on a fresh file failed inside SQLAlchemy.
    ModelRegistry(Database.from_settings(settings)).ensure_base_version(settings.llm.model_family)
    try:
        with processes(env, folder / "logs") as workers:
            workers.start("ingest", "worker", "ingest")
            yield Cluster(Cli(env), settings, workers)
    finally:
        delete_topics(kafka_url, settings.broker.topic_prefix)


def test_ingest_url_on_kafka_is_indexed_by_the_worker_process_and_followed_to_the_end(cluster: Cluster) -> None:
    with web_pages({"/ostra.html": OSTRA}) as base:
        result = cluster.cli("ingest", f"{base}/ostra.html", "--tenant", "riverside", "--timeout", "300")
    assert result.returncode == 0, f"{result.stderr}\n{cluster.workers.tails()}"
    assert "indexed 1 of 1 document(s)" in result.stderr
    broker = KafkaBroker(cluster.settings.broker.kafka_bootstrap, topic_prefix=cluster.settings.broker.topic_prefix)
    progress = [(e["tenant"], e["stage"]) for e in read_topic(cluster.settings, broker, "docs.progress") if e["document_id"] == f"{base}/ostra.html"]
    assert progress[-1] == ("riverside", "indexed"), progress  # reported on Kafka by the worker: the CLI runs no role here
    hits = cluster.cli.json("search", "How long is the Ostra river?", "--tenant", "riverside", "--json")
    assert hits[0]["document_id"] == f"{base}/ostra.html"


def test_publish_file_on_kafka_reaches_the_worker_process(cluster: Cluster, tmp_path: Path) -> None:
    events = [{"document_id": "k-river", "tenant": "riverside", "title": "Ostra", "text": "The Ostra river flows 612 kilometres."},
              {"document_id": "k-bread", "tenant": "harbour", "title": "Bakery", "text": "Harbor Street Bakery bakes rye sourdough."}]
    (tmp_path / "events.json").write_text(json.dumps(events))
    result = cluster.cli.ok("publish", "docs.ingest", str(tmp_path / "events.json"))
    assert "published 2 event(s) to docs.ingest" in result.stderr
    store = cluster.documents()

    def indexed() -> bool:
        rows = [store.get_document(event["document_id"]) for event in events]
        return [(row.tenant, row.status) for row in rows if row is not None] == [("riverside", "indexed"), ("harbour", "indexed")]

    cluster.workers.wait_until(indexed, timeout=300, what="both published documents indexed by the worker")
