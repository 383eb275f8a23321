"""A real HTTPS server on 127.0.0.1 with its own certificate authority, for fetches that must be `https://`.

The certificate is made by the `openssl` command (a self-signed CA that names `localhost` and
127.0.0.1); tests trust it the way a deployment trusts a private authority, through
RAGLOOP_INGEST_FETCH_CA_FILE. Routes are given as a dict path → (status, content type, body); a query
string does not change the route.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support import serving, unavailable

Routes = dict[str, tuple[int, str, bytes]]


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for `localhost` and 127.0.0.1, valid for a day; the certificate is its own CA."""
    if shutil.which("openssl") is None:
        unavailable("the `openssl` command is not installed; it makes the test HTTPS server's certificate")
    cert, key = folder / "server.pem", folder / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True)
    return cert, key


@contextmanager
def serve_https(routes: Routes, cert: Path, key: Path, asked: list[str] | None = None,
                hold: threading.Event | None = None) -> Iterator[str]:
    """Serve `routes` over TLS on a free port of 127.0.0.1; yields the base URL (`https://127.0.0.1:PORT`).
    Every path asked for is appended to `asked`; with `hold`, every answer waits until it is set."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            if asked is not None:
                asked.append(self.path)
            if hold is not None:
                hold.wait(timeout=300)
            status, content_type, body = routes.get(self.path.split("?", 1)[0], (404, "text/plain", b"not here"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server, "https") as url:
        yield url
