"""A page fetched by URL brings its `data:` images with it, as images of the same document (tiny CLIP), and its
remote images are not fetched: the only request made is the page's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from indexing.images.ingest import LazyImages
from indexing.images.store import image_id
from indexing.loaders.ingest_event import load_ingest_event
from schemas.events import DocumentIngest
from schemas.settings import Settings
from tests.images_support import data_url, html_with_images, image_bytes

PNG = image_bytes("PNG", color=(30, 160, 30))


class Page(BaseHTTPRequestHandler):
    requested: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.requested.append(self.path)
        body = html_with_images("A green tent", [(data_url(PNG), "a green tent"), (f"http://{self.headers['Host']}/remote.png", "remote")])
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    Page.requested = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_fetched_page_indexes_its_data_images_and_fetches_no_remote_one(clip_settings: Settings, server: str) -> None:
    images = LazyImages(clip_settings)
    event = DocumentIngest(tenant="camp", document_id="tents", url=f"{server}/tents.html", access=["staff"])
    document = load_ingest_event(event, max_bytes=1 << 20, timeout_s=10, allow_private=True, images=images)
    assert "A green tent" in document.text
    assert document.metadata["embedded_images"] == [image_id("camp", PNG)]
    assert Page.requested == ["/tents.html"]
    ingester = images.get()
    [hit] = ingester.index.search(tenant="camp", vector=ingester.clip.encode_texts(["a tent"])[0], k=5, principals=["staff"])
    assert (hit.image.caption, hit.image.document_id, hit.image.source, hit.image.access) == (
        "a green tent", "tents", f"{server}/tents.html", ["staff"])
