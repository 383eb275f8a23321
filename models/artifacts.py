"""Where adapters live so that every host can load them: content-addressed, verified, never a trainer's path.

A trained adapter is named by its weights: `version_id(family, adapter_digest(folder))` gives
`<family>@lora-<sha256[:12]>`, so the same weights are always the same version and a version is
never reloaded under an old name. `ArtifactStore.put` copies the adapter's files under that id into a
local folder (default `home/artifacts`) or an S3-compatible bucket; `fetch` brings them back into
`home/artifact-cache/<version>` and checks the digest, so an agent on another host loads exactly
what the trainer gated.

Nothing here writes outside the store and the cache: a version id must match `VERSION_ID` (no '/',
no '..'), and the file names a manifest lists must be plain names.

    store = open_artifact_store(settings.artifacts_url, home=settings.home)
    uri = store.put(version, adapter_folder)       # file:///…/artifacts/<version> or s3://bucket/prefix/<version>
    folder = store.fetch(uri, version)             # home/artifact-cache/<version>, digest verified
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from schemas.events import VERSION_PATTERN

VERSION_ID = re.compile(VERSION_PATTERN)
MANIFEST = "ragloop-artifact.json"  # written last: a folder or prefix with a manifest is complete
# The files that make the adapter (what PEFT and the DeepSpeed recipe save): hashed and copied. train_report.json
# is copied beside them but not hashed (its timings differ run to run); README.md (PEFT's model card) is left behind.
WEIGHT_AND_CONFIG = re.compile(r"^adapter_[A-Za-z0-9_.-]+\.(safetensors|bin|json)$")
EXTRAS = ("train_report.json",)
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$")


class ArtifactError(ValueError):
    """An artifact that cannot be stored or trusted: a bad version id, no adapter files, a digest that does not match."""


def check_version(version: str) -> str:
    """The version id, if it may name a folder; raises ArtifactError saying what a version id looks like."""
    if len(version) > 200 or not VERSION_ID.fullmatch(version):
        raise ArtifactError(f"{version!r} is not a model version id (expected e.g. `smollm2-135m-instruct@lora-0123456789ab`: "
                            "letters, digits, '_', '-', single dots, one '@'; no '/' or '..')")
    return version


def adapter_files(folder: Path) -> list[str]:
    """The adapter's weight and config file names in `folder`, sorted."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and WEIGHT_AND_CONFIG.match(p.name)) if folder.is_dir() else []
    if not names:
        raise ArtifactError(f"{folder} holds no adapter files (adapter_config.json, adapter_model.safetensors)")
    return names


def adapter_digest(folder: Path) -> str:
    """sha256 hex over the adapter's weight and config files, sorted by name: each name, then its length and bytes."""
    digest = hashlib.sha256()
    for name in adapter_files(folder):
        data = (folder / name).read_bytes()
        digest.update(f"{name}\x00{len(data)}\x00".encode())
        digest.update(data)
    return digest.hexdigest()


def version_id(family: str, digest: str) -> str:
    return check_version(f"{family}@lora-{digest[:12]}")


class ArtifactStore(Protocol):
    def put(self, version: str, folder: Path) -> str:
        """Copy the adapter's files under `version`; returns the URI to record (file://… or s3://…)."""
        ...

    def fetch(self, uri: str, version: str) -> Path:
        """A local folder with the adapter's files (home/artifact-cache/<version>), digest verified."""
        ...


class _BlobStore:
    """put/fetch over a place of named blobs; subclasses say how a blob is written and read."""

    scheme = ""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def _write(self, version: str, name: str, data: bytes) -> None:
        raise NotImplementedError

    def _read(self, location: str, name: str) -> bytes:
        raise NotImplementedError

    def _uri(self, version: str) -> str:
        raise NotImplementedError

    def put(self, version: str, folder: Path) -> str:
        check_version(version)
        names = adapter_files(folder)
        digest = adapter_digest(folder)
        _expect_digest(version, digest)
        extras = [name for name in EXTRAS if (folder / name).is_file()]
        for name in names + extras:
            self._write(version, name, (folder / name).read_bytes())
        manifest: dict[str, Any] = {"version": version, "sha256": digest, "files": names, "extras": extras}
        self._write(version, MANIFEST, json.dumps(manifest, indent=2).encode())
        return self._uri(version)

    def fetch(self, uri: str, version: str) -> Path:
        target = self.cache / check_version(version)
        if (target / MANIFEST).is_file():  # a version's files never change: fetched once, verified then
            return target
        location = self._location(uri, version)
        manifest = json.loads(self._read(location, MANIFEST))
        names = [_plain_name(n) for n in [*manifest.get("files", []), *manifest.get("extras", [])]]
        self.cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.cache))
        try:
            for name in names:
                (staging / name).write_bytes(self._read(location, name))
            digest = adapter_digest(staging)
            if digest != manifest.get("sha256"):
                raise ArtifactError(f"{uri}: the adapter's files hash to {digest[:12]}…, not the {str(manifest.get('sha256'))[:12]}… "
                                    "its manifest records (a partial or altered copy)")
            _expect_digest(version, digest)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
            try:
                os.rename(staging, target)  # atomic: a reader sees the whole folder or none
            except OSError:  # another process fetched it first; its copy is as good as ours
                if not (target / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _location(self, uri: str, version: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme != self.scheme:
            raise ArtifactError(f"{uri!r} is not a {self.scheme}:// artifact; this host's store (RAGLOOP_ARTIFACTS_URL) reads {self.scheme}://")
        if unquote(parts.path).rstrip("/").rpartition("/")[2] != version:
            raise ArtifactError(f"{uri!r} is not the artifact of {version!r}: its last path segment must be the version id")
        return uri


class LocalArtifactStore(_BlobStore):
    """A folder (local disk or a shared mount): `<root>/<version>/<file>`."""

    scheme = "file"

    def __init__(self, root: Path, cache: Path) -> None:
        super().__init__(cache)
        self.root = root

    def _write(self, version: str, name: str, data: bytes) -> None:
        folder = self.root / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    def _read(self, location: str, name: str) -> bytes:
        try:
            return (Path(unquote(urlsplit(location).path)) / name).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"{location}: no {name} (was the artifact store's folder moved or cleaned?)") from None

    def _uri(self, version: str) -> str:
        return (self.root / version).resolve().as_uri()


class S3ArtifactStore(_BlobStore):
    """An S3-compatible bucket through the minio client: `s3://<bucket>/<prefix>/<version>/<file>`."""

    scheme = "s3"

    def __init__(self, bucket: str, prefix: str, cache: Path, client: Any) -> None:
        super().__init__(cache)
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client

    def _key(self, version: str, name: str = "") -> str:
        return "/".join(part for part in (self.prefix, version, name) if part)

    def _write(self, version: str, name: str, data: bytes) -> None:
        self.client.put_object(self.bucket, self._key(version, name), io.BytesIO(data), len(data))

    def _read(self, location: str, name: str) -> bytes:
        from minio.error import S3Error

        parts = urlsplit(location)
        try:
            return read_object(self.client, parts.netloc, f"{parts.path.strip('/')}/{name}")
        except S3Error as error:
            raise ArtifactError(f"{location}: cannot read {name} ({error.code})") from None

    def _uri(self, version: str) -> str:
        return f"s3://{self.bucket}/{self._key(version)}"


def open_artifact_store(url: str | None, *, home: Path, endpoint: str | None = None, access_key: str | None = None,
                        secret_key: str | None = None, region: str | None = None) -> ArtifactStore:
    """`None` or `file:///path` → a folder (default `home/artifacts`); `s3://bucket/prefix` → that bucket on `endpoint`
    (default AWS, `https://s3.amazonaws.com`) with the given keys. Fetched adapters are cached under home/artifact-cache."""
    cache = home / "artifact-cache"
    if url is None or url.startswith("file://"):
        return LocalArtifactStore(Path(unquote(urlsplit(url).path)) if url else home / "artifacts", cache)
    if url.startswith("s3://"):

        parts = urlsplit(url)
        if not parts.netloc:
            raise ArtifactError(f"RAGLOOP_ARTIFACTS_URL {url!r} names no bucket (expected s3://bucket/prefix)")
        return S3ArtifactStore(parts.netloc, parts.path, cache, s3_client(endpoint, access_key, secret_key, region))
    raise ArtifactError(f"RAGLOOP_ARTIFACTS_URL must be file:///path or s3://bucket/prefix, not {url!r}")


def _expect_digest(version: str, digest: str) -> None:
    family, _, name = version.partition("@")
    if name.startswith("lora-") and version != f"{family}@lora-{digest[:12]}":
        raise ArtifactError(f"{version!r} does not name these weights: their digest starts {digest[:12]}")


def _plain_name(name: object) -> str:
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or name == MANIFEST:
        raise ArtifactError(f"an artifact manifest lists {name!r}, which is not a plain file name")
    return name


def s3_client(endpoint: str | None, access_key: str | None, secret_key: str | None, region: str | None) -> Any:
    """The minio client of the RAGLOOP_ARTIFACT_STORE_* connection (default AWS), shared by every bucket-backed
    store; minio is imported only when a bucket is used."""
    from minio import Minio

    server = urlsplit(endpoint or "https://s3.amazonaws.com")
    return Minio(server.netloc, access_key=access_key, secret_key=secret_key, secure=server.scheme == "https",
                 region=region or "us-east-1")  # a region given up front: no location lookup before the first request


def read_object(client: Any, bucket: str, key: str) -> bytes:
    """The bytes of one object through a minio client, its connection released; raises minio's S3Error."""
    response = client.get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()
