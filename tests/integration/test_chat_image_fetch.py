"""`https:` images in chat are fetched by the gateway through URL ingestion's fetcher and SSRF guard, within
the chat image limits, and travel on the chat event exactly like `data:` images (as data URLs). The server
is a real HTTPS server on 127.0.0.1 whose authority is trusted through RAGLOOP_INGEST_FETCH_CA_FILE; private
addresses are allowed only by RAGLOOP_FETCH_ALLOW_PRIVATE, as for URL ingestion."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from tests.images_support import bomb_png, image_bytes
from tests.support import wait_for
from tests.tls_server import make_certificate, serve_https

DEFAULT_POOL = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default executor, as ThreadPoolExecutor sizes it
RED = image_bytes("PNG", size=(64, 48))
ROUTES = {"/red.png": (200, "image/png", RED), "/red": (200, "application/octet-stream", RED),
          "/page.html": (200, "text/html; charset=utf-8", b"<html><body>a page</body></html>"),
          "/big.png": (200, "image/png", b"\x89PNG" + bytes(range(256)) * 40), "/bomb.png": (200, "image/png", bomb_png(2000, 2000)),
          "/corrupt.png": (200, "image/png", b"\x89PNG not really")}


def question(url: str) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "text", "text": "which of ours is like this?"}, {"type": "image_url", "image_url": {"url": url}}]}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def asked() -> list[str]:
    return []


@pytest.fixture
def server(certificate: tuple[Path, Path], asked: list[str]) -> Iterator[str]:
    with serve_https(ROUTES, *certificate, asked=asked) as url:
        yield url


def gateway(settings: Settings) -> TestClient:
    return TestClient(create_app(Runtime(settings, roles=[])))


@pytest.fixture
def trusting(settings: Settings, certificate: tuple[Path, Path]) -> Settings:
    """The gateway may fetch from loopback (the test server) and trusts the test server's authority."""
    return settings.override(fetch_allow_private=True, ingest_fetch_ca_file=certificate[0], gateway_max_image_bytes=4096,
                             gateway_max_image_pixels=1_000_000)


@pytest.mark.parametrize("path", ["/red.png", "/red"])  # an image type, or bytes of no declared type that are an image
def test_an_https_image_is_fetched_and_travels_as_the_data_url_of_its_bytes(trusting: Settings, server: str, path: str) -> None:
    runtime = Runtime(trusting, roles=[])
    with TestClient(create_app(runtime)) as client:
        posted = client.post("/v1/chat", json={"tenant": "acme", "messages": [question(server + path)]})
        assert posted.status_code == 202, posted.text
        task = runtime.stores.tasks.get_task(posted.json()["task_id"])
    assert task is not None
    request = task.request
    assert request["images"] == ["data:image/png;base64," + base64.b64encode(RED).decode()]
    assert f"[image attached: PNG 64x48 from {server}{path}]" in request["messages"][-1]["content"]


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/page.html", 422, "answered text/html, not an image"),
    ("/missing.png", 422, "answered HTTP 404"),
    ("/big.png", 413, "RAGLOOP_GATEWAY_MAX_IMAGE_BYTES"),
    ("/bomb.png", 422, "RAGLOOP_GATEWAY_MAX_IMAGE_PIXELS"),
    ("/corrupt.png", 422, "cannot be decoded"),
])
def test_what_cannot_be_fetched_as_an_image_is_refused_saying_why(trusting: Settings, server: str, path: str, status: int,
                                                                  message: str) -> None:
    with gateway(trusting) as client:
        refused = client.post("/v1/chat", json={"messages": [question(server + path)]})
    assert refused.status_code == status and "messages.0.content.1" in refused.text and message in refused.text, refused.text


def test_an_unreachable_image_server_is_a_422_saying_so(trusting: Settings) -> None:
    with gateway(trusting) as client:
        refused = client.post("/v1/chat", json={"messages": [question("https://127.0.0.1:9/cat.png")]})
    assert refused.status_code == 422 and "cannot connect" in refused.text, refused.text


def test_private_addresses_are_refused_before_any_request_is_sent(settings: Settings, certificate: tuple[Path, Path],
                                                                   server: str, asked: list[str]) -> None:
    guarded = settings.override(ingest_fetch_ca_file=certificate[0])  # RAGLOOP_FETCH_ALLOW_PRIVATE left off
    with gateway(guarded) as client:
        refused = client.post("/v1/chat", json={"messages": [question(server + "/red.png")]})
    assert refused.status_code == 422 and "loopback" in refused.text, refused.text
    assert asked == []


def test_a_server_whose_authority_is_not_trusted_is_refused(settings: Settings, server: str) -> None:
    with gateway(settings.override(fetch_allow_private=True)) as client:
        refused = client.post("/v1/chat", json={"messages": [question(server + "/red.png")]})
    assert refused.status_code == 422 and "CERTIFICATE_VERIFY_FAILED" in refused.text, refused.text


def test_the_api_answers_while_more_image_fetches_than_the_default_pool_are_blocked(trusting: Settings,
                                                                                  certificate: tuple[Path, Path]) -> None:
    """Image fetches run on the fetch pool, as URL ingestion's do: slow image servers never starve the API's store calls."""
    n, asked, hold = DEFAULT_POOL + 2, [], threading.Event()
    with serve_https(ROUTES, *certificate, asked=asked, hold=hold) as images, \
            serve_in_thread(create_app(Runtime(trusting.override(fetch_timeout_s=300, ingest_fetch_threads=n), roles=[]))) as url, \
            ThreadPoolExecutor(max_workers=n + 1) as callers:
        try:
            posts = [callers.submit(httpx.post, f"{url}/v1/chat", json={"messages": [question(f"{images}/red.png?{i}")]}, timeout=300)
                     for i in range(n)]
            wait_for(lambda: len(asked) >= n, timeout=120, what=f"all {n} image fetches to be in flight")
            unknown = callers.submit(httpx.get, f"{url}/v1/tasks/no-such-task", timeout=300).result(timeout=60)
            assert unknown.status_code == 404 and not hold.is_set()  # a store call answered while every fetch still blocks
        finally:
            hold.set()
        assert all(post.result(timeout=120).status_code == 202 for post in posts)
