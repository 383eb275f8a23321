"""The ingest role through the API: text, uploads and URLs become searchable documents; progress is
reported stage by stage; bad documents fail with their reason while the others keep flowing; waiting
documents are indexed as one batch and a huge one takes the large lane, on the embedded broker and
on Kafka."""

from __future__ import annotations

import base64
import http.server
import threading
import zlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from schemas.events import DocumentIndexed, DocumentIngest
from schemas.settings import Settings
from streams.brokers.kafka import create_topics
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.support import read_topic, wait_for

HTML = b"<html><head><title>Ostra</title><script>var x=1;</script></head><body><main><h1>The Ostra river</h1>" \
       b"<p>The Ostra river flows 612 kilometres to the Northern Sea.</p></main></body></html>"


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = Runtime(settings.override(fetch_allow_private=True), ["ingest"])
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


@pytest.fixture
def web_page() -> Iterator[str]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(HTML)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ostra.html"
    server.shutdown()


def wait_status(client: TestClient, document_id: str, statuses: set[str], timeout: float = 120) -> dict:
    def reached() -> dict | None:
        doc = client.get(f"/v1/documents/{document_id}").json()
        return doc if doc.get("status") in statuses else None

    return wait_for(reached, timeout=timeout, what=f"{document_id} to be {sorted(statuses)}")


def test_text_document_reports_every_stage_in_order(api) -> None:
    client, runtime = api
    client.post("/v1/documents", json={"id": "t1", "text": "A short note about rivers.\n\nAnd a second paragraph."})
    assert wait_status(client, "t1", {"indexed", "failed"})["status"] == "indexed"
    stages = [e["stage"] for e in read_topic(runtime.settings, runtime.broker, "docs.progress") if e["document_id"] == "t1"]
    assert stages == ["parsed", "chunked", "embedded", "indexed"]


def test_url_is_fetched_parsed_as_html_and_searchable(api, web_page: str) -> None:
    client, runtime = api
    client.post("/v1/documents", json={"id": "web", "url": web_page})
    doc = wait_status(client, "web", {"indexed", "failed"})
    assert doc["status"] == "indexed", doc
    hits = runtime.services.retriever.retrieve("How long is the Ostra river?", k=1)
    assert hits[0].chunk.document_id == "web" and "612" in hits[0].chunk.text and "var x" not in hits[0].chunk.text


def test_uploaded_markdown_bytes_are_indexed(api) -> None:
    client, _ = api
    blob = base64.b64encode(b"# Bakery\n\nRye sourdough is baked every morning.").decode()
    client.post("/v1/documents", json={"id": "md", "content_b64": blob, "filename": "bakery.md"})
    assert wait_status(client, "md", {"indexed", "failed"})["status"] == "indexed"


def test_corrupt_pdf_fails_with_its_reason_and_others_keep_flowing(api) -> None:
    client, runtime = api
    broken = base64.b64encode(b"%PDF-1.7\nthis is not really a pdf").decode()
    client.post("/v1/documents", json={"id": "bad", "content_b64": broken, "media_type": "application/pdf"})
    client.post("/v1/documents", json={"id": "good", "text": "Still indexed after the bad one."})
    bad = wait_status(client, "bad", {"indexed", "failed"})
    assert bad["status"] == "failed" and "pdf" in bad["error"].lower()
    assert wait_status(client, "good", {"indexed", "failed"})["status"] == "indexed"
    failed = [e for e in read_topic(runtime.settings, runtime.broker, "docs.progress") if e["document_id"] == "bad" and e["stage"] == "failed"]
    assert failed and failed[0]["reason"] == bad["error"]
    assert any('"bad"' in letter["payload"] for letter in read_topic(runtime.settings, runtime.broker, "docs.ingest.dlq"))


def test_deleted_document_disappears_from_search(api) -> None:
    client, runtime = api
    client.post("/v1/documents", json={"id": "gone", "text": "The Veltrin Observatory sits on Mount Caldera."})
    wait_status(client, "gone", {"indexed"})
    assert client.delete("/v1/documents/gone").status_code == 202
    assert wait_status(client, "gone", {"deleted"})["chunks"] == 0
    hits = runtime.services.retriever.retrieve("Veltrin Observatory", k=5)
    assert all(hit.chunk.document_id != "gone" for hit in hits)


def same_partition_ids(anchor: str, count: int, partitions: int = 3) -> list[str]:
    """Document ids the embedded broker puts in `anchor`'s partition, i.e. queued behind it."""
    target = zlib.crc32(anchor.encode()) % partitions
    return [i for i in (f"small-{n}" for n in range(1000)) if zlib.crc32(i.encode()) % partitions == target][:count]


class HeldPage:
    """A web page above the large-lane threshold whose first fetch (the main consumer's, which finds
    it too large) is answered at once, and every later fetch (the large lane's) only once the test
    calls `release()`: the huge document stays on the lane for as long as the test needs, whatever
    the machine's speed."""

    BODY = ("<html><body><h1>Sediment report</h1>" + "".join(
        f"<p>Sentence {n} of the long report describes sediment layer {n % 97} in detail.</p>" for n in range(400))
        + "</body></html>").encode()

    def __init__(self) -> None:
        self.fetches = 0
        self.lane_fetching = threading.Event()
        self._released = threading.Event()
        page = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page.fetches += 1
                if page.fetches > 1:
                    page.lane_fetching.set()
                    page._released.wait(timeout=600)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page.BODY)))
                self.end_headers()
                self.wfile.write(page.BODY)

            def log_message(self, *_: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/report.html"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()


@pytest.fixture
def held_page() -> Iterator[HeldPage]:
    page = HeldPage()
    yield page
    page.close()


def lane_settings(settings: Settings) -> Settings:
    """A 20 kB large-lane threshold (the held page is ~33 kB); a fetch may wait on the test for long."""
    return settings.override(ingest_large_bytes=20_000, fetch_allow_private=True, fetch_timeout_s=600.0)


@pytest.fixture
def kafka_settings(settings: Settings, unique: str, kafka_url: str) -> Settings:
    """The ingest role on Kafka, under a topic prefix of its own. One partition per topic: every
    document is queued behind the ones published before it, and `docs.progress` keeps one order."""
    return settings.override(broker_url=kafka_url, topic_prefix=f"ing{unique}.", kafka_partitions=1, auth="off")


def assert_huge_document_takes_the_large_lane_while_small_ones_pass(settings: Settings, page: HeldPage, small: list[str]) -> None:
    """The huge document is published first and the small ones behind it in its partition. The
    small ones are all indexed while the huge one is held on the lane (so it cannot have held them
    up); released, it is indexed there, last."""
    runtime = Runtime(lane_settings(settings), ["ingest"])
    assert len(HeldPage.BODY) > runtime.settings.ingest.large_bytes
    with TestClient(create_app(runtime)) as client:
        client.post("/v1/documents", json={"id": "huge", "url": page.url})
        for document_id in small:
            client.post("/v1/documents", json={"id": document_id, "text": f"A short note numbered {document_id}."})
        for document_id in small:
            assert wait_status(client, document_id, {"indexed", "failed"})["status"] == "indexed"
        wait_for(page.lane_fetching.is_set, what="the large lane to fetch the huge document")
        assert client.get("/v1/documents/huge").json()["status"] == "indexing"  # on the lane, held there
        page.release()
        assert wait_status(client, "huge", {"indexed", "failed"}, timeout=300)["status"] == "indexed"
        progress = read_topic(runtime.settings, runtime.broker, "docs.progress")
    indexed_order = [e["document_id"] for e in progress if e["stage"] == "indexed"]
    assert indexed_order[-1] == "huge" and sorted(indexed_order[:-1]) == sorted(small)
    stages = [e["stage"] for e in progress if e["document_id"] == "huge"]
    assert stages[stages.index("queued"):] == ["queued", "parsed", "chunked", "embedded", "indexed"]
    assert "docs.ingest.large" in next(e["reason"] for e in progress if e["document_id"] == "huge" and e["stage"] == "queued")
    assert runtime.services.retriever.retrieve("sediment layer 42", k=1)[0].chunk.document_id == "huge"


def test_huge_document_never_holds_up_the_small_ones_behind_it(settings: Settings, held_page: HeldPage) -> None:
    assert_huge_document_takes_the_large_lane_while_small_ones_pass(settings, held_page, same_partition_ids("huge", 4))


def test_on_kafka_a_huge_document_never_holds_up_the_small_ones_behind_it(kafka_settings: Settings, held_page: HeldPage) -> None:
    assert_huge_document_takes_the_large_lane_while_small_ones_pass(kafka_settings, held_page, [f"small-{n}" for n in range(4)])


def test_on_kafka_waiting_documents_are_indexed_as_one_batch(kafka_settings: Settings) -> None:
    """Documents already waiting on `docs.ingest` when the worker starts go through the pipeline
    together: all are parsed, then all chunked, then all embedded (reported just before the one
    index write), then all indexed. One at a time, each would finish before the next is parsed."""
    documents = [DocumentIngest(document_id=f"note-{n}", text=f"Note {n}: the Orvel dam is inspected every spring.") for n in range(5)]
    prefix = kafka_settings.broker.topic_prefix
    create_topics(kafka_settings.broker.kafka_bootstrap, [prefix + "docs.ingest"], partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_settings.broker.kafka_bootstrap)
    for document in documents:
        producer.send(prefix + "docs.ingest", document.model_dump_json().encode(), key=document.key().encode(),
                      headers=[("type", document.type.encode())])
    producer.flush()
    producer.close()
    runtime = Runtime(kafka_settings, ["ingest"])
    with TestClient(create_app(runtime)) as client:
        for document in documents:
            assert wait_status(client, document.document_id, {"indexed", "failed"})["status"] == "indexed"
        progress = read_topic(runtime.settings, runtime.broker, "docs.progress")
    stages = [e["stage"] for e in progress]
    assert stages == ["parsed"] * 5 + ["chunked"] * 5 + ["embedded"] * 5 + ["indexed"] * 5


def test_a_later_version_of_a_document_on_the_large_lane_follows_it_there(settings: Settings) -> None:
    runtime = Runtime(settings.override(ingest_large_bytes=20_000), ["ingest"])
    huge = " ".join(f"Draft sentence {n} about the Orvel dam." for n in range(700))
    assert len(huge) > runtime.settings.ingest.large_bytes
    with TestClient(create_app(runtime)) as client:
        client.post("/v1/documents", json={"id": "report", "text": huge})
        client.post("/v1/documents", json={"id": "report", "text": "Final version: the Orvel dam is 212 metres tall."})

        def both_versions_indexed() -> list[dict]:
            indexed = [e for e in read_topic(runtime.settings, runtime.broker, "docs.progress")
                       if e["document_id"] == "report" and e["stage"] == "indexed"]
            return indexed if len(indexed) == 2 else []

        versions = wait_for(both_versions_indexed, timeout=600, interval=0.2, what="both versions of the report to be indexed")
        assert [v["counts"]["chunks"] for v in versions][1] == 1  # the final, one-chunk version was applied last
        hits = runtime.services.retriever.retrieve("How tall is the Orvel dam?", k=3)
        assert [h.chunk.text for h in hits if h.chunk.document_id == "report"] == ["Final version: the Orvel dam is 212 metres tall."]


def test_the_indexed_event_of_a_many_chunk_document_stays_small(api) -> None:
    client, runtime = api
    text = "\n\n".join(f"Paragraph {n} tells how the Ostra river feeds mill number {n} on its way north." for n in range(300))
    client.post("/v1/documents", json={"id": "long", "text": text})
    indexed = wait_status(client, "long", {"indexed", "failed"})
    assert indexed["status"] == "indexed" and indexed["chunks"] > 16
    [event] = [m for m in runtime.broker.retained["docs.indexed"] if b'"long"' in m.value]  # type: ignore[attr-defined]
    assert len(event.value) < 4096, len(event.value)  # a count and the first ids, not every chunk id
    body = DocumentIndexed.model_validate_json(event.value)
    assert body.chunks == indexed["chunks"] and len(body.chunk_ids) == 16
