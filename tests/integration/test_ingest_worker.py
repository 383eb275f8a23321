"""The ingest role through the API: text, uploads and URLs become searchable documents; progress is
reported stage by stage; bad documents fail with their reason while the others keep flowing."""

from __future__ import annotations

import base64
import http.server
import threading
import time
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
