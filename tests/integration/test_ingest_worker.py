"""The ingest role through the API: text, uploads and URLs become searchable documents; progress is
reported stage by stage; bad documents fail with their reason while the others keep flowing."""

from __future__ import annotations

import base64
import http.server
import threading
import time
import zlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.support import read_topic

HTML = b"<html><head><title>Ostra</title><script>var x=1;</script></head><body><main><h1>The Ostra river</h1>" \
       b"<p>The Ostra river flows 612 kilometres to the Northern Sea.</p></main></body></html>"


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = Runtime(settings.model_copy(update={"fetch_allow_private": True}), ["ingest"])
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


@pytest.fixture
def web_page() -> Iterator[str]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 — http.server's naming
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/v1/documents/{document_id}").json()
        if doc["status"] in statuses:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"{document_id} not in {statuses}: {doc}")


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


def test_huge_document_never_holds_up_the_small_ones_behind_it(settings: Settings) -> None:
    runtime = Runtime(settings.model_copy(update={"ingest_large_bytes": 20_000}), ["ingest"])
    huge = " ".join(f"Sentence {n} of the long report describes sediment layer {n % 97} in detail." for n in range(2500))
    small = same_partition_ids("huge", 4)
    with TestClient(create_app(runtime)) as client:
        client.post("/v1/documents", json={"id": "huge", "text": huge})
        for document_id in small:
            client.post("/v1/documents", json={"id": document_id, "text": f"A short note numbered {document_id}."})
        for document_id in small:
            assert wait_status(client, document_id, {"indexed", "failed"})["status"] == "indexed"
        assert client.get("/v1/documents/huge").json()["status"] in {"queued", "indexing"}
        assert wait_status(client, "huge", {"indexed", "failed"}, timeout=600)["status"] == "indexed"
        progress = read_topic(runtime.settings, runtime.broker, "docs.progress")
    indexed_order = [e["document_id"] for e in progress if e["stage"] == "indexed"]
    assert indexed_order[-1] == "huge" and set(indexed_order[:-1]) == set(small)
    stages = [e["stage"] for e in progress if e["document_id"] == "huge"]
    assert stages == ["queued", "parsed", "chunked", "embedded", "indexed"]
    assert "docs.ingest.large" in next(e["reason"] for e in progress if e["document_id"] == "huge")
    assert runtime.services.retriever.retrieve("sediment layer 42", k=1)[0].chunk.document_id == "huge"


def test_a_later_version_of_a_document_on_the_large_lane_follows_it_there(settings: Settings) -> None:
    runtime = Runtime(settings.model_copy(update={"ingest_large_bytes": 20_000}), ["ingest"])
    huge = " ".join(f"Draft sentence {n} about the Orvel dam." for n in range(2000))
    with TestClient(create_app(runtime)) as client:
        client.post("/v1/documents", json={"id": "report", "text": huge})
        client.post("/v1/documents", json={"id": "report", "text": "Final version: the Orvel dam is 212 metres tall."})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            versions = [e for e in read_topic(runtime.settings, runtime.broker, "docs.progress")
                        if e["document_id"] == "report" and e["stage"] == "indexed"]
            if len(versions) == 2:
                break
            time.sleep(0.2)
        assert [v["counts"]["chunks"] for v in versions][1] == 1  # the final, one-chunk version was applied last
        hits = runtime.services.retriever.retrieve("How tall is the Orvel dam?", k=3)
        assert [h.chunk.text for h in hits if h.chunk.document_id == "report"] == ["Final version: the Orvel dam is 212 metres tall."]
