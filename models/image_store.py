"""Where generated images live so that any gateway can serve them: a folder or an S3-compatible bucket.

The worker that renders an image (often on a GPU host) puts its PNG here and records the returned
URI on the job; the gateway reads it back by that URI when the owning tenant asks for it. Images
are named by their job id (hex), so nothing a client sends becomes a path.

    store = open_image_store(settings.image_gen.store_url, home=settings.home)
    uri = store.put("3f2a…", png)     # file:///…/generated-images/3f2a….png or s3://bucket/prefix/3f2a….png
    png = store.get(uri)
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

_IMAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class ImageStoreError(ValueError):
    """An image that cannot be stored or read: a bad id, a URI of another store, a missing object."""


def _name(image_id: str) -> str:
    if not _IMAGE_ID.fullmatch(image_id):
        raise ImageStoreError(f"{image_id!r} is not an image id (letters, digits, '_' or '-')")
    return f"{image_id}.png"


class ImageStore(Protocol):
    def put(self, image_id: str, png: bytes) -> str:
        """Keep the image; returns the URI to record."""
        ...

    def get(self, uri: str) -> bytes:
        """The bytes of an image this store put."""
        ...


class LocalImageStore:
    """A folder (local disk or a shared mount): `<root>/<id>.png`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, image_id: str, png: bytes) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / _name(image_id)
        path.write_bytes(png)
        return path.resolve().as_uri()

    def get(self, uri: str) -> bytes:
        parts = urlsplit(uri)
        path = Path(unquote(parts.path))
        if parts.scheme != "file" or path.parent.resolve() != self.root.resolve():
            raise ImageStoreError(f"{uri!r} is not in this image store ({self.root})")
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ImageStoreError(f"{uri}: the image is gone (was the image folder moved or cleaned?)") from None


class S3ImageStore:
    """An S3-compatible bucket through the minio client: `s3://<bucket>/<prefix>/<id>.png`."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client

    def put(self, image_id: str, png: bytes) -> str:
        key = "/".join(part for part in (self.prefix, _name(image_id)) if part)
        self.client.put_object(self.bucket, key, io.BytesIO(png), len(png), content_type="image/png")
        return f"s3://{self.bucket}/{key}"

    def get(self, uri: str) -> bytes:
        from minio.error import S3Error

        parts = urlsplit(uri)
        if parts.scheme != "s3" or parts.netloc != self.bucket:
            raise ImageStoreError(f"{uri!r} is not in this image store (s3://{self.bucket})")
        try:
            response = self.client.get_object(self.bucket, parts.path.lstrip("/"))
        except S3Error as error:
            raise ImageStoreError(f"{uri}: cannot read the image ({error.code})") from None
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()


def open_image_store(url: str | None, *, home: Path, endpoint: str | None = None, access_key: str | None = None,
                     secret_key: str | None = None, region: str | None = None) -> ImageStore:
    """`None` or `file:///path` → a folder (default `home/generated-images`); `s3://bucket/prefix` → that bucket on
    `endpoint` with the given keys (the artifact store's connection settings)."""
    if url is None or url.startswith("file://"):
        return LocalImageStore(Path(unquote(urlsplit(url).path)) if url else home / "generated-images")
    if url.startswith("s3://"):

        parts = urlsplit(url)
        if not parts.netloc:
            raise ImageStoreError(f"RAGLOOP_IMAGE_GEN_STORE_URL {url!r} names no bucket (expected s3://bucket/prefix)")
        from models.artifacts import s3_client

        return S3ImageStore(parts.netloc, parts.path, s3_client(endpoint, access_key, secret_key, region))
    raise ImageStoreError(f"RAGLOOP_IMAGE_GEN_STORE_URL must be file:///path or s3://bucket/prefix, not {url!r}")
