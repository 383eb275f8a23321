"""Where image files live: the original bytes, a thumbnail and a small JSON record per image,
under one folder per tenant (`RAGLOOP_IMAGES_FOLDER`, default home/images).

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
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

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
    """Image files and records under `root`, one folder per tenant."""

    def __init__(self, root: Path, *, max_bytes: int, max_pixels: int, thumbnail_px: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.thumbnail_px = thumbnail_px

    def decode(self, data: bytes, *, name: str = "the image") -> DecodedImage:
        """`decode_image` under this store's limits."""
        return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, name=name)

    def put(self, tenant: str, data: bytes, *, caption: str = "", source: str | None = None, document_id: str | None = None,
            access: Sequence[str] = (), decoded: DecodedImage | None = None) -> StoredImage:
        """Store an image (decoded and checked here unless `decoded` is given); returns its record."""
        decoded = decoded or self.decode(data, name=source or "the image")
        record = StoredImage(id=image_id(tenant, data), tenant=tenant, media_type=decoded.media_type,
                             width=decoded.image.width, height=decoded.image.height, caption=caption, source=source,
                             document_id=document_id, access=list(access), bytes=len(data))
        folder = self._folder(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / f"{record.id}.bin", data)
        _write(folder / f"{record.id}.thumb.jpg", self._thumbnail(decoded))
        _write(folder / f"{record.id}.json", record.model_dump_json().encode())
        return record

    def get(self, tenant: str, image_id: str) -> StoredImage | None:
        """The record of a tenant's image, or None (unknown id, or another tenant's)."""
        path = self._path(tenant, image_id, ".json")
        if path is None or not path.is_file():
            return None
        record = StoredImage.model_validate(json.loads(path.read_bytes()))
        return record if record.tenant == tenant else None

    def read(self, tenant: str, image_id: str) -> bytes | None:
        path = self._path(tenant, image_id, ".bin")
        return path.read_bytes() if path is not None and path.is_file() and self.get(tenant, image_id) else None

    def thumbnail(self, tenant: str, image_id: str) -> bytes | None:
        path = self._path(tenant, image_id, ".thumb.jpg")
        return path.read_bytes() if path is not None and path.is_file() and self.get(tenant, image_id) else None

    def delete(self, tenant: str, image_id: str) -> bool:
        removed = False
        for suffix in (".json", ".bin", ".thumb.jpg"):
            path = self._path(tenant, image_id, suffix)
            if path is not None and path.is_file():
                path.unlink()
                removed = True
        return removed

    def _thumbnail(self, decoded: DecodedImage) -> bytes:
        small = decoded.image.copy()
        small.thumbnail((self.thumbnail_px, self.thumbnail_px))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=85)
        return out.getvalue()

    def _folder(self, tenant: str) -> Path:
        return self.root / hashlib.sha256(tenant.encode()).hexdigest()[:32]

    def _path(self, tenant: str, image_id: str, suffix: str) -> Path | None:
        return self._folder(tenant) / f"{image_id}{suffix}" if IMAGE_ID.match(image_id) else None


def _write(path: Path, data: bytes) -> None:
    """Write then rename: a reader never sees half a file."""
    partial = path.with_name(path.name + f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(path)


def open_image_store(settings: Settings) -> ImageStore:
    """The image store the settings name (RAGLOOP_IMAGES_FOLDER, default home/images)."""
    images = settings.images
    return ImageStore(images.folder or settings.home / "images", max_bytes=images.max_bytes,
                      max_pixels=images.max_pixels, thumbnail_px=images.thumbnail_px)


def store_image(settings: Settings, tenant: str, data: bytes, *, caption: str = "", source: str | None = None) -> str:
    """Store an image of `tenant` (checked against the limits) and return its id: what the image
    generator calls with a generated picture and its prompt as caption."""
    return open_image_store(settings).put(tenant, data, caption=caption, source=source).id
