"""Dead letters as a feature, on both brokers: every letter is recorded with its reason, counted,
logged once, listed by `ragloop dlq` and `GET /v1/dead-letters` (tenant walls included), and a
replay after fixing the cause gets the work done, recording who replayed it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from structlog.testing import capture_logs

from indexing.document_store import DocumentStore
from schemas.database import Database
from schemas.events import DeadLetter, DocumentIngest
from schemas.settings import Settings
from streams.brokers.kafka import create_topics
from streams.dead_letters import DLQ_BODY_BYTES, DeadLetterStore
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from streams.topics import all_topic_names
from tests.support import eventually

RAGLOOP = str(Path(sys.executable).with_name("ragloop"))
PAGE = "<html><head><title>Kessel glacier</title></head><body><p>The Kessel glacier feeds the Ostra river with meltwater.</p></body></html>"


@pytest.fixture
def page_url(tmp_path: Path) -> Iterator[str]:
    """A page on 127.0.0.1: forbidden by the SSRF guard until RAGLOOP_FETCH_ALLOW_PRIVATE is set."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "kessel.html").write_text(PAGE)

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(tmp_path / "site"), **kwargs)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/kessel.html"
    finally:
        server.shutdown()


@pytest.fixture(params=["embedded", "kafka"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> dict[str, str]:
    """The environment the CLI and the workers share: one home (SQLite), one broker."""
    env = {"RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_SEARCH_URL": "embedded://", "RAGLOOP_BROKER_URL": "memory://",
           "RAGLOOP_WORKER_RETRY_BACKOFF_S": "0.05", "COLUMNS": "250"}
    if request.param == "kafka":
        env |= {"RAGLOOP_BROKER_URL": request.getfixturevalue("kafka_url"), "RAGLOOP_TOPIC_PREFIX": f"dlq{unique}."}
    return env


def ragloop(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([RAGLOOP, *args], env={**os.environ, **env}, input=stdin, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def settings_of(env: dict[str, str], **overrides: object) -> Settings:
    return Settings(home=Path(env["RAGLOOP_HOME"]), broker={"url": env["RAGLOOP_BROKER_URL"], "topic_prefix": env.get("RAGLOOP_TOPIC_PREFIX", "")},
                    search={"url": "embedded://"}, workers={"retry_backoff_s": 0.05}).override(**overrides)


async def with_ingest_worker(settings: Settings, until) -> None:
    """Cluster mode: an ingest worker runs elsewhere (here: in this process) while the CLI publishes."""
    runtime = Runtime(settings, ["ingest"])
    await runtime.start()
    try:
        await until()
    finally:
        await runtime.stop()


def letters_of(env: dict[str, str], topic: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in ragloop(env, "dlq", "list", topic, "--json").stdout.splitlines()]


def test_a_letter_is_listed_shown_and_replayed_after_the_cause_is_fixed(cluster: dict[str, str], page_url: str) -> None:
    event = DocumentIngest(tenant="acme", document_id="kessel", title="Kessel", url=page_url).model_dump_json()
    kafka = not cluster["RAGLOOP_BROKER_URL"].startswith("memory")
    if kafka:
        create_topics(settings_of(cluster).broker.kafka_bootstrap, [cluster["RAGLOOP_TOPIC_PREFIX"] + n for n in all_topic_names()], partitions=3)

        async def publish_and_wait_for_the_letter() -> None:
            await asyncio.to_thread(ragloop, cluster, "publish", "docs.ingest", "-", stdin=event)
            await eventually(lambda: DeadLetterStore(Database.from_settings(settings_of(cluster))).list(topic="docs.ingest"),
                             timeout=60, what="the dead letter")

        asyncio.run(with_ingest_worker(settings_of(cluster), publish_and_wait_for_the_letter))
    else:
        published = ragloop(cluster, "publish", "docs.ingest", "-", stdin=event)
        assert "dead-lettered to docs.ingest.dlq" in published.stderr

    [letter] = letters_of(cluster, "docs.ingest")
    assert letter["tenant"] == "acme" and letter["error_type"] == "PermanentError" and letter["replays"] == 0
    assert "private" in str(letter["reason"]) or "not allowed" in str(letter["reason"]), letter["reason"]
    shown = json.loads(ragloop(cluster, "dlq", "show", str(letter["id"])).stdout)
    assert json.loads(shown["payload"])["url"] == page_url
    assert letters_of(cluster, "chat.requests") == []

    fixed = {**cluster, "RAGLOOP_FETCH_ALLOW_PRIVATE": "true"}  # the cause: private URLs were not allowed
    if kafka:
        async def replay_and_wait_for_the_index() -> None:
            out = await asyncio.to_thread(ragloop, fixed, "dlq", "replay", "docs.ingest", "--ids", str(letter["id"]), "--by", "ops-anna")
            assert json.loads(out.stdout) == {"replayed": [letter["id"]], "failed_again": []}
            store = DocumentStore(Database.from_settings(settings_of(cluster)))
            await eventually(lambda: (d := store.get_document("kessel")) is not None and d.status == "indexed", timeout=120,
                             what="the replayed document indexed")

        asyncio.run(with_ingest_worker(settings_of(cluster, fetch_allow_private=True), replay_and_wait_for_the_index))
    else:
        out = ragloop(fixed, "dlq", "replay", "docs.ingest", "--ids", str(letter["id"]), "--by", "ops-anna")
        assert json.loads(out.stdout) == {"replayed": [letter["id"]], "failed_again": []}

    hits = json.loads(ragloop(cluster, "search", "Kessel glacier meltwater", "--tenant", "acme", "--mode", "bm25", "--json").stdout)
    assert hits and hits[0]["document_id"] == "kessel"
    [replayed] = letters_of(cluster, "docs.ingest")
    assert (replayed["replays"], replayed["replayed_by"]) == (1, "ops-anna")


def test_schema_invalid_events_are_recorded_with_the_field_named_counted_and_logged_once(tmp_path: Path) -> None:
    cluster = {"RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_BROKER_URL": "memory://", "RAGLOOP_SEARCH_URL": "embedded://"}
    before = REGISTRY.get_sample_value("ragloop_dead_letters_total", {"topic": "docs.ingest", "reason": "ValidationError"}) or 0
    settings = settings_of(cluster)

    async def publish_invalid() -> list[dict[str, object]]:
        runtime = Runtime(settings, ["ingest"])
        await runtime.start(warm=False)
        try:
            with capture_logs() as logs:
                await runtime.broker.publish("docs.ingest", b'{"document_id": "d1", "title": "T", "text": "x", "colour": "red"}', key="d1")
                await runtime.broker.join()  # type: ignore[attr-defined]
        finally:
            await runtime.stop()
        return logs

    logs = asyncio.run(publish_invalid())
    [letter] = letters_of(cluster, "docs.ingest")
    assert "colour" in str(letter["reason"]) and letter["error_type"] == "ValidationError" and letter["attempts"] == 0
    warnings = [entry for entry in logs if entry["log_level"] == "warning" and entry["event"] == "dead-lettered"]
    assert len(warnings) == 1 and "colour" in warnings[0]["reason"], logs
    after = REGISTRY.get_sample_value("ragloop_dead_letters_total", {"topic": "docs.ingest", "reason": "ValidationError"})
    assert after == before + 1


def test_a_redelivered_dead_lettering_is_recorded_once(settings: Settings) -> None:
    letters = DeadLetterStore(Database.from_settings(settings))
    letter = DeadLetter(topic="docs.ingest", key="d1", consumer="ragloop.ingest", reason="PermanentError: no", error_type="PermanentError",
                        attempts=1, payload=DocumentIngest(document_id="d1", title="T", text="x").model_dump_json())
    first, second = letters.record(letter), letters.record(letter)
    assert first.id == second.id
    assert [r.id for r in letters.list()] == [first.id]


def test_over_http_a_key_sees_only_its_own_tenants_letters(settings: Settings) -> None:
    keyed = settings.override(auth="on", api_keys=SecretStr("key-a=tenantA,key-b=tenantB,key-x=tenantA|team-x"))
    runtime = Runtime(keyed, [])
    letters = DeadLetterStore(runtime.stores.db)

    def letter(tenant: str, document_id: str, **extra: object) -> str:
        payload = json.dumps({"type": "chat.requests", "tenant": tenant, "task_id": document_id, **extra})
        return letters.record(DeadLetter(topic="chat.requests", key=None, consumer="ragloop.agent", reason="RuntimeError: boom",
                                         error_type="RuntimeError", attempts=4, payload=payload)).id

    a, b = letter("tenantA", "t-a"), letter("tenantB", "t-b")
    restricted = letter("tenantA", "t-x", principals=["team-x"])
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=30) as client:
        def ids(key: str, **params: str) -> list[str]:
            reply = client.get("/v1/dead-letters", headers={"Authorization": f"Bearer {key}"}, params=params)
            assert reply.status_code == 200, reply.text
            return [row["id"] for row in reply.json()["dead_letters"]]

        assert ids("key-a") == [a]  # not tenantB's, not the one asked as team-x
        assert ids("key-b") == [b]
        assert sorted(ids("key-x")) == sorted([a, restricted])
        assert ids("key-b", tenant="tenantA") == [b]  # the key decides, not the query
        assert ids("key-a", topic="docs.ingest") == []
        assert client.get("/v1/dead-letters").status_code == 401
        bad = client.get("/v1/dead-letters", headers={"Authorization": "Bearer key-a"}, params={"since": "yesterday"})
        assert bad.status_code == 422 and "30m" in bad.text


def test_an_over_size_invalid_event_fits_the_dlq_and_fails_the_document_it_names(settings: Settings) -> None:
    runtime = Runtime(settings, ["ingest"])
    runtime.stores.documents.upsert_document("big", "acme", status="queued")
    value = json.dumps({"tenant": "acme", "document_id": "big", "text": '"quoted" ' * 120_000, "colour": "red"}).encode()

    async def publish_invalid() -> None:
        await runtime.start(warm=False)
        try:
            await runtime.broker.publish("docs.ingest", value, key="big")
            await runtime.broker.join()  # type: ignore[attr-defined]
        finally:
            await runtime.stop()

    asyncio.run(publish_invalid())
    [raw] = runtime.broker.retained["docs.ingest.dlq"]  # type: ignore[attr-defined]
    copy = DeadLetter.model_validate_json(raw.value)
    assert len(raw.value) < 6 * DLQ_BODY_BYTES + 16_384 < 1_048_576 < len(value) * 2  # bounded (JSON escaping at most x6)
    assert copy.payload_truncated and copy.payload_bytes == len(value) and copy.dead_letter_id is not None
    row = DeadLetterStore(runtime.stores.db).get(copy.dead_letter_id)
    assert row is not None and row.payload.encode() == value  # replay reads the whole payload from the row
    document = runtime.stores.documents.get_document("big")
    assert document is not None and document.status == "failed" and "colour" in (document.error or "")
