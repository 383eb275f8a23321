"""Where the image store's files live: a folder (local disk or a shared mount) or an S3-compatible bucket.

The image store (indexing/images/store.py) names its files by keys it builds itself (`<tenant
hash>/<image id>.<kind>`), never from what a client sent; this module only writes, reads and
removes those keys. A bucket is reached with the artifact store's connection
(`models.artifacts.s3_client`, the RAGLOOP_ARTIFACT_STORE_* settings), so a GPU host that
generates images and the gateways that serve them share one place without a shared disk.

    blobs = open_blobs("s3://media/images", default=home / "images", endpoint="http://minio:9000")
    blobs.write("ab12…/img-….bin", data, "image/png")
    blobs.read("ab12…/img-….bin")     # None when there is no such file
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit


class Blobs(Protocol):
    def write(self, key: str, data: bytes, content_type: str) -> None: ...

    def read(self, key: str) -> bytes | None:
        """The file's bytes, or None when there is none under `key`."""

    def delete(self, key: str) -> bool:
        """Remove the file; False when there was none."""


class FolderBlobs:
    """Files under `root`; a write goes to a temporary name first, so a reader never sees half a file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, key: str, data: bytes, content_type: str) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(path)

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def delete(self, key: str) -> bool:
        path = self.root / key
        if not path.is_file():
            return False
        path.unlink()
        return True


class BucketBlobs:
    """Objects `<prefix>/<key>` in an S3-compatible bucket through the minio client."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def write(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(self.bucket, self._key(key), io.BytesIO(data), len(data), content_type=content_type)

    def read(self, key: str) -> bytes | None:
        from minio.error import S3Error

        from models.artifacts import read_object

        try:
            return read_object(self.client, self.bucket, self._key(key))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise

    def delete(self, key: str) -> bool:
        if self.read(key) is None:  # S3 answers a delete of a missing key with success: ask first
            return False
        self.client.remove_object(self.bucket, self._key(key))
        return True


def open_blobs(url: str | None, *, default: Path, endpoint: str | None = None, access_key: str | None = None,
               secret_key: str | None = None, region: str | None = None, setting: str = "RAGLOOP_IMAGES_STORE_URL") -> Blobs:
    """`None` → the folder `default`; `file:///path` → that folder; `s3://bucket/prefix` → that bucket on `endpoint`.
    ValueError naming `setting` for anything else."""
    if url is None:
        return FolderBlobs(default)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FolderBlobs(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"{setting} {url!r} names no bucket (expected s3://bucket/prefix)")
        from models.artifacts import s3_client

        return BucketBlobs(parts.netloc, parts.path, s3_client(endpoint, access_key, secret_key, region))
    raise ValueError(f"{setting} must be file:///path or s3://bucket/prefix, not {url!r}")
