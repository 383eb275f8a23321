"""Slow URL fetches run on their own bounded pool: with more of them blocked than the default
thread pool has threads, the API and its store calls still answer (item 14 of issue #11)."""

from __future__ import annotations

import http.server
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.support import wait_for

HTML = b"<html><head><title>Slow</title></head><body><p>A page that took its time.</p></body></html>"
DEFAULT_POOL = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default executor, as ThreadPoolExecutor sizes it


class SlowSite:
    """A loopback server whose every GET blocks until `release` is set, counting those in flight."""

    def __init__(self) -> None:
        self.release, self.lock, self.in_flight, self.served = threading.Event(), threading.Lock(), 0, 0
        site = self

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with site.lock:
                    site.in_flight += 1
                site.release.wait(timeout=300)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(HTML)
                with site.lock:
                    site.served += 1

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def ids_on_their_own_partitions(n: int, partitions: int) -> list[str]:
    """Document ids the embedded broker puts on n different partitions (it hashes the key with crc32),
    so each fetch runs in its own partition's batch and all n are in flight together."""
    ids: dict[int, str] = {}
    candidate = 0
    while len(ids) < n:
        key = f"slow-{candidate}"
        ids.setdefault(zlib.crc32(key.encode()) % partitions, key)
        candidate += 1
    return list(ids.values())


@pytest.fixture
def slow_site() -> Iterator[SlowSite]:
    site = SlowSite()
    threading.Thread(target=site.server.serve_forever, daemon=True).start()
    yield site
    site.release.set()
    site.server.shutdown()


def test_store_calls_and_the_api_answer_while_more_fetches_than_the_default_pool_are_blocked(settings: Settings,
                                                                                           slow_site: SlowSite) -> None:
    n, partitions = DEFAULT_POOL + 2, 4 * (DEFAULT_POOL + 2)
    ids = ids_on_their_own_partitions(n, partitions)
    runtime = Runtime(settings.override(fetch_allow_private=True, fetch_timeout_s=300, ingest_fetch_threads=n,
                                        kafka_partitions=partitions), ["ingest"])
    calls = ThreadPoolExecutor(max_workers=1)

    def within(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The call, or a failure if it does not return: a starved pool would hang it until the fetches time out."""
        return calls.submit(call, *args, **kwargs).result(timeout=120)

    try:
        with TestClient(create_app(runtime)) as client:
            try:
                for document_id in ids:
                    reply = within(client.post, "/v1/documents", json={"id": document_id, "url": f"{slow_site.url}/{document_id}.html"})
                    assert reply.status_code == 202
                wait_for(lambda: slow_site.in_flight >= n, timeout=120, what=f"all {n} fetches to be in flight")
                document = within(client.get, f"/v1/documents/{ids[0]}")
                assert document.status_code == 200 and document.json()["status"] == "indexing"
                assert slow_site.served == 0 and not slow_site.release.is_set()  # answered while every fetch still blocks
            finally:
                slow_site.release.set()
            wait_for(lambda: client.get(f"/v1/documents/{ids[-1]}").json()["status"] == "indexed", timeout=300,
                     what="the slow documents to be indexed once released")
    finally:
        calls.shutdown(wait=False)
