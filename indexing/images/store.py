"""The one image store: the original bytes, a thumbnail and a small JSON record per image, for
ingested and generated images alike, under one folder per tenant of a local folder
(`RAGLOOP_IMAGES_FOLDER`, default home/images) or of an S3-compatible bucket
(`RAGLOOP_IMAGES_STORE_URL=s3://bucket/prefix`, see indexing/images/blobs.py).

An image id is a content hash of (tenant, bytes): storing the same picture twice gives the same id
and the same files (idempotent under at-least-once delivery). A tenant's folder is named by a hash
of the tenant, so a lookup under another tenant finds nothing: `get` with the wrong tenant is None,
never someone else's image.

    store = open_image_store(settings)
    image = store.put("acme", data, caption="a red bicycle", source="catalog/bike.jpg")
    store.read("acme", image.id)          # the original bytes
    store.thumbnail("acme", image.id)     # JPEG thumbnail bytes
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from indexing.images.blobs import Blobs, FolderBlobs, open_blobs
from indexing.images.decode import DecodedImage, decode_image

if TYPE_CHECKING:
    from schemas.settings import Settings

IMAGE_ID = re.compile(r"^img-[0-9a-f]{24}$")


class StoredImage(BaseModel):
    """What is known about a stored image (its JSON record)."""

    id: str
    tenant: str
    media_type: str
    width: int
    height: int
    caption: str = ""
    source: str | None = None
    document_id: str | None = None
    access: list[str] = Field(default_factory=list)
    bytes: int = 0

    def visible_to(self, principals: Sequence[str] | None) -> bool:
        """The rule of the search backends: an empty access list is the whole tenant's."""
        return not self.access or bool(set(self.access) & set(principals or ()))


def image_id(tenant: str, data: bytes) -> str:
    return "img-" + hashlib.sha256(tenant.encode() + b"\0" + data).hexdigest()[:24]


class ImageStore:
    """Image files and records in `blobs`, one folder per tenant."""

    def __init__(self, blobs: Blobs | Path, *, max_bytes: int, max_pixels: int, thumbnail_px: int) -> None:
        self.blobs = FolderBlobs(blobs) if isinstance(blobs, Path) else blobs
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.thumbnail_px = thumbnail_px

    def decode(self, data: bytes, *, name: str = "the image") -> DecodedImage:
        """`decode_image` under this store's limits."""
        return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, name=name)

    def put(self, tenant: str, data: bytes, *, caption: str = "", source: str | None = None, document_id: str | None = None,
            access: Sequence[str] = (), decoded: DecodedImage | None = None) -> StoredImage:
        """Store an image (decoded and checked here unless `decoded` is given); returns its record.
        The record is written last: an image is there once its record is."""
        decoded = decoded or self.decode(data, name=source or "the image")
        record = StoredImage(id=image_id(tenant, data), tenant=tenant, media_type=decoded.media_type,
                             width=decoded.image.width, height=decoded.image.height, caption=caption, source=source,
                             document_id=document_id, access=list(access), bytes=len(data))
        self.blobs.write(self._key(tenant, record.id, ".bin"), data, record.media_type)
        self.blobs.write(self._key(tenant, record.id, ".thumb.jpg"), self._thumbnail(decoded), "image/jpeg")
        self.blobs.write(self._key(tenant, record.id, ".json"), record.model_dump_json().encode(), "application/json")
        return record

    def get(self, tenant: str, image_id: str) -> StoredImage | None:
        """The record of a tenant's image, or None (unknown id, or another tenant's)."""
        if not IMAGE_ID.match(image_id):
            return None
        raw = self.blobs.read(self._key(tenant, image_id, ".json"))
        record = StoredImage.model_validate(json.loads(raw)) if raw is not None else None
        return record if record is not None and record.tenant == tenant else None

    def read(self, tenant: str, image_id: str) -> bytes | None:
        """The original bytes of a tenant's image, or None."""
        return self.blobs.read(self._key(tenant, image_id, ".bin")) if self.get(tenant, image_id) else None

    def thumbnail(self, tenant: str, image_id: str) -> bytes | None:
        """The JPEG thumbnail of a tenant's image, or None."""
        return self.blobs.read(self._key(tenant, image_id, ".thumb.jpg")) if self.get(tenant, image_id) else None

    def delete(self, tenant: str, image_id: str) -> bool:
        if not IMAGE_ID.match(image_id):
            return False
        removed = [self.blobs.delete(self._key(tenant, image_id, suffix)) for suffix in (".json", ".bin", ".thumb.jpg")]
        return any(removed)

    def _thumbnail(self, decoded: DecodedImage) -> bytes:
        small = decoded.image.copy()
        small.thumbnail((self.thumbnail_px, self.thumbnail_px))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=85)
        return out.getvalue()

    @staticmethod
    def _key(tenant: str, image_id: str, suffix: str) -> str:
        return f"{hashlib.sha256(tenant.encode()).hexdigest()[:32]}/{image_id}{suffix}"


def open_image_store(settings: Settings) -> ImageStore:
    """The image store the settings name: RAGLOOP_IMAGES_STORE_URL (`file:///path` or `s3://bucket/prefix`; the
    older RAGLOOP_IMAGE_GEN_STORE_URL is read when it is unset), else the folder RAGLOOP_IMAGES_FOLDER (home/images).
    A bucket is reached with the RAGLOOP_ARTIFACT_STORE_* connection."""
    images, s3 = settings.images, settings.artifact_store
    url = images.store_url or settings.image_gen.store_url
    setting = "RAGLOOP_IMAGES_STORE_URL" if images.store_url else "RAGLOOP_IMAGE_GEN_STORE_URL"
    blobs = open_blobs(url, default=images.folder or settings.home / "images", endpoint=s3.endpoint, region=s3.region,
                       access_key=s3.access_key.get_secret_value() if s3.access_key else None,
                       secret_key=s3.secret_key.get_secret_value() if s3.secret_key else None, setting=setting)
    return ImageStore(blobs, max_bytes=images.max_bytes, max_pixels=images.max_pixels, thumbnail_px=images.thumbnail_px)

