"""A small S3 double at the HTTP edge: PUT, GET and DELETE of objects as S3 answers them, refusing
requests that are not AWS v4 signed with the access key `ak`. Stores that use a bucket are driven
through the real minio client against it (the artifact store, the image store)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from tests.support import serving


class S3Double(BaseHTTPRequestHandler):
    """Objects keyed by their request path (`/bucket/key`)."""

    objects: ClassVar[dict[str, bytes]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _signed(self) -> bool:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 Credential=ak/") or not self.headers.get("x-amz-content-sha256"):
            self.send_response(403)
            self.end_headers()
            return False
        return True

    def _path(self) -> str:
        return unquote(urlsplit(self.path).path)

    def do_PUT(self) -> None:
        if self._signed():
            self.objects[self._path()] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("ETag", '"e"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_DELETE(self) -> None:
        if self._signed():
            self.objects.pop(self._path(), None)
            self.send_response(204)
            self.end_headers()

    def do_GET(self) -> None:
        if not self._signed():
            return
        body = self.objects.get(self._path())
        if body is None:
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>missing</Message>'
                    b"<Resource>" + self.path.encode() + b"</Resource><RequestId>1</RequestId></Error>")
            self.send_response(404)
            self.send_header("Content-Type", "application/xml")
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def s3_double() -> Iterator[str]:
    """A fresh, empty double for the block; yields its endpoint URL."""
    S3Double.objects = {}
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), S3Double)) as url:
        yield url
