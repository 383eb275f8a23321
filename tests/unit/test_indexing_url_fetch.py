"""Fetching documents over HTTP from a real server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from indexing.loaders import UnsupportedFormatError
from indexing.url_fetch import (
    FetchFailedError,
    FetchTimeoutError,
    FetchTooLargeError,
    ForbiddenURLError,
    fetch_url,
    load_url,
    trusted_context,
)
from tests.tls_server import make_certificate, serve_https
from tests.unit.test_indexing_loaders import make_pdf

# Held by a stalling server until the test has seen the fetch refused; the cap only ends a failing test.
RELEASE = threading.Event()
STALL_CAP_S = 10
PAGE = b"<html><head><title>Guide</title></head><body><nav>menu</nav><h1>Setup</h1><p>Install it.</p></body></html>"
PDF = make_pdf(["Fetched PDF text"], title="Fetched")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def send(self, status: int, body: bytes, content_type: str = "text/plain", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        port = self.server.server_address[1]
        if path == "/guide.html":
            self.send(200, PAGE, "text/html; charset=utf-8")
        elif path == "/files/report":  # no suffix, generic type: recognised by its bytes
            self.send(200, PDF, "application/octet-stream")
        elif path == "/host":
            self.send(200, self.headers["Host"].encode())
        elif path == "/big":
            self.send(200, b"x" * 10_000)
        elif path == "/unsized":  # no Content-Length: the limit must hold while streaming
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self._write_until_closed(b"y" * 1000, pause=0.0, times=100)
        elif path == "/bomb":
            self.send(200, gzip.compress(b"z" * 1_000_000), "text/plain", Content_Encoding="gzip")
        elif path == "/slow":  # says nothing until released
            RELEASE.wait(STALL_CAP_S)
            self.send(200, b"late")
        elif path == "/drip":  # answers at once, then one byte every 0.1 s until released: each read is quick
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self._write_until_closed(b".", pause=0.1, times=int(STALL_CAP_S / 0.1), until=RELEASE)
        elif path == "/redirect":
            self.send(302, b"", Location=query.removeprefix("to="))
        elif path == "/loop":
            self.send(302, b"", Location=f"http://127.0.0.1:{port}/loop")
        elif path == "/image":
            self.send(200, b"\x89PNG\r\n", "image/png")
        else:
            self.send(404, b"not found")

    def _write_until_closed(self, part: bytes, *, pause: float, times: int, until: threading.Event | None = None) -> None:
        """Pace the body like a slow network (the pause is the server's speed, not a test's wait)."""
        released = until or threading.Event()
        try:
            for _ in range(times):
                self.wfile.write(part)
                self.wfile.flush()
                if released.wait(pause):
                    return
        except (BrokenPipeError, ConnectionResetError):
            pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # clients that stop reading at the size limit close the connection; that is expected


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def stalled() -> Iterator[None]:
    """The stalling routes hold on until this test is done with them."""
    RELEASE.clear()
    yield
    RELEASE.set()


def test_a_page_is_fetched_and_loaded_as_a_document(server):
    doc = load_url(f"{server}/guide.html", tenant="acme", access=["team"], allow_private=True)
    assert (doc.id, doc.tenant, doc.title, doc.text, doc.access) == (f"{server}/guide.html", "acme", "Guide",
                                                                      "Setup\n\nInstall it.", ["team"])
    assert doc.source == doc.metadata["final_url"] == f"{server}/guide.html"
    assert doc.metadata["http_status"] == 200 and doc.metadata["content_type"] == "text/html"


def test_a_pdf_without_a_useful_type_or_suffix_is_recognised_by_its_bytes(server):
    doc = load_url(f"{server}/files/report", allow_private=True)
    assert (doc.title, doc.text) == ("Fetched", "Fetched PDF text")


def test_the_request_carries_the_original_host_header(server):
    fetched = fetch_url(f"{server}/host", allow_private=True)
    assert fetched.content.decode() == server.removeprefix("http://")


def test_the_loopback_server_is_refused_by_default(server):
    with pytest.raises(ForbiddenURLError, match="loopback"):
        fetch_url(f"{server}/guide.html")


def test_a_declared_size_over_the_limit_is_refused(server):
    with pytest.raises(FetchTooLargeError, match="10000 bytes, over the limit of 5000"):
        fetch_url(f"{server}/big", max_bytes=5000, allow_private=True)


def test_the_size_limit_holds_while_streaming_an_unsized_body(server):
    with pytest.raises(FetchTooLargeError, match="over the limit of 5000 bytes"):
        fetch_url(f"{server}/unsized", max_bytes=5000, allow_private=True)


def test_the_size_limit_counts_decompressed_bytes(server):
    with pytest.raises(FetchTooLargeError):
        fetch_url(f"{server}/bomb", max_bytes=100_000, allow_private=True)


def test_a_server_that_does_not_answer_times_out(server, stalled):
    """The server answers only after the refusal, so only the time limit can end this fetch."""
    with pytest.raises(FetchTimeoutError, match=r"no answer within 0\.5 s"):
        fetch_url(f"{server}/slow", timeout_s=0.5, allow_private=True)


def test_the_time_limit_covers_the_whole_download_not_each_read(server, stalled):
    """Bytes keep arriving until after the refusal: each read is quick, only the whole-download limit ends it."""
    with pytest.raises(FetchTimeoutError, match=r"the download took over 0\.6 s"):
        fetch_url(f"{server}/drip", timeout_s=0.6, allow_private=True)


def test_redirects_are_followed(server):
    fetched = fetch_url(f"{server}/redirect?to=/guide.html", allow_private=True)
    assert fetched.final_url == f"{server}/guide.html" and fetched.redirects == [f"{server}/redirect?to=/guide.html"]


def test_each_redirect_target_is_checked_again(server):
    with pytest.raises(ForbiddenURLError, match=r"127\.0\.0\.2.*loopback"):
        fetch_url(f"{server}/redirect?to=http://127.0.0.2:1/", allowed_networks=["127.0.0.1/32"])
    with pytest.raises(ForbiddenURLError, match="only http"):
        fetch_url(f"{server}/redirect?to=file:///etc/passwd", allow_private=True)


def test_redirect_loops_stop_at_the_limit(server):
    with pytest.raises(FetchFailedError, match="more than 3 redirects"):
        fetch_url(f"{server}/loop", max_redirects=3, allow_private=True)


def test_an_error_status_is_a_failure_with_the_status(server):
    with pytest.raises(FetchFailedError, match="HTTP 404") as caught:
        fetch_url(f"{server}/nothing-here", allow_private=True)
    assert caught.value.retryable is False


def test_an_unreachable_server_is_a_retryable_failure():
    with pytest.raises(FetchFailedError, match="cannot connect") as caught:
        fetch_url("http://127.0.0.1:9/", timeout_s=2, allow_private=True)
    assert caught.value.retryable is True


def test_an_unsupported_media_type_is_refused_with_what_is_accepted(server):
    with pytest.raises(UnsupportedFormatError, match=r"image/png.*accepted"):
        load_url(f"{server}/image", allow_private=True)


def test_https_is_fetched_pinned_to_the_checked_address_and_verified_against_a_trusted_private_authority(tmp_path) -> None:
    cert, key = make_certificate(tmp_path)
    with serve_https({"/guide.html": (200, "text/html", PAGE)}, cert, key) as server:
        fetched = fetch_url(f"{server}/guide.html", allow_private=True, verify=trusted_context(cert))
        assert fetched.content == PAGE
        with pytest.raises(FetchFailedError, match="CERTIFICATE_VERIFY_FAILED"):  # the public authorities alone do not vouch for it
            fetch_url(f"{server}/guide.html", allow_private=True)


def test_an_unreadable_ca_file_is_refused_naming_the_setting(tmp_path) -> None:
    with pytest.raises(ValueError, match="RAGLOOP_INGEST_FETCH_CA_FILE"):
        trusted_context(tmp_path / "missing.pem")
