"""The one image store: the original bytes, a thumbnail and a small JSON record per image, for
ingested and generated images alike, under one folder per tenant of a local folder
(`RAGLOOP_IMAGES_FOLDER`, default home/images) or of an S3-compatible bucket
(`RAGLOOP_IMAGES_STORE_URL=s3://bucket/prefix`, see indexing/images/blobs.py).

An image id is a content hash of (tenant, bytes): storing the same picture twice gives the same id
and the same files (idempotent under at-least-once delivery). A tenant's folder is named by a hash
of the tenant, so a lookup under another tenant finds nothing: `get` with the wrong tenant is None,
never someone else's image.

Because one stored image can belong to several documents of a tenant (the same picture uploaded twice,
or inside two PDFs), its record keeps the ids of the documents that hold it, and each document has a
small list of its image ids (`<tenant hash>/documents/<document hash>.json`). Deleting a document
releases its images: each loses that document, and an image no document holds any more is removed,
files and record, so `GET /v1/images/{id}` stops serving it while another document's copy stays.

    store = open_image_store(settings)
    image = store.put("acme", data, caption="a red bicycle", source="catalog/bike.jpg")
    store.read("acme", image.id)          # the original bytes
    store.thumbnail("acme", image.id)     # JPEG thumbnail bytes
    store.release_document("acme", "bike")  # the ids of the images that went with the document
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, model_validator

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
    documents: list[str] = Field(default_factory=list, description="The documents that hold this image; it goes with the last.")

    @model_validator(mode="after")
    def _held_by_its_document(self) -> StoredImage:
        """Records written before `documents` existed name their one document in `document_id`."""
        if self.document_id is not None and self.document_id not in self.documents:
            self.documents = sorted({*self.documents, self.document_id})
        return self

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
        # who holds an image is read, changed and written back: one change at a time in this process (the ingest
        # worker's puts and deletes run on different threads)
        self._holders = threading.Lock()

    def decode(self, data: bytes, *, name: str = "the image") -> DecodedImage:
        """`decode_image` under this store's limits."""
        return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, name=name)

    def put(self, tenant: str, data: bytes, *, caption: str = "", source: str | None = None, document_id: str | None = None,
            access: Sequence[str] = (), decoded: DecodedImage | None = None) -> StoredImage:
        """Store an image (decoded and checked here unless `decoded` is given); returns its record.
        The record is written last: an image is there once its record is. With `document_id` the image is
        also that document's (see `release_document`), besides the documents that already held it."""
        decoded = decoded or self.decode(data, name=source or "the image")
        identifier = image_id(tenant, data)
        thumbnail = self._thumbnail(decoded)
        with self._holders:  # a release of the image's last other holder cannot remove the files between these writes
            self.blobs.write(self._key(tenant, identifier, ".bin"), data, decoded.media_type)
            self.blobs.write(self._key(tenant, identifier, ".thumb.jpg"), thumbnail, "image/jpeg")
            held = set(earlier.documents) if (earlier := self.get(tenant, identifier)) is not None else set()
            if document_id is not None:
                held.add(document_id)
                self._list_image(tenant, document_id, identifier)
            record = StoredImage(id=identifier, tenant=tenant, media_type=decoded.media_type,
                                 width=decoded.image.width, height=decoded.image.height, caption=caption, source=source,
                                 document_id=document_id, access=list(access), bytes=len(data), documents=sorted(held))
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

    def images_of(self, tenant: str, document_id: str) -> list[str]:
        """The ids of the images `document_id` of `tenant` holds (none for an unknown document)."""
        raw = self.blobs.read(self._document_key(tenant, document_id))
        return [str(i) for i in json.loads(raw)] if raw is not None else []

    def release_document(self, tenant: str, document_id: str) -> list[str]:
        """Let go of a deleted document's images: each no longer names it, and one that no other document holds
        is deleted. Returns the ids deleted. Safe to repeat (a redelivered delete finds nothing left to do)."""
        with self._holders:
            return self._release(tenant, document_id)

    def _release(self, tenant: str, document_id: str) -> list[str]:
        deleted: list[str] = []
        for identifier in self.images_of(tenant, document_id):
            record = self.get(tenant, identifier)
            if record is None:
                continue
            left = sorted(set(record.documents) - {document_id})
            if left:
                kept = record.model_copy(update={"documents": left,
                                                 "document_id": record.document_id if record.document_id in left else left[0]})
                self.blobs.write(self._key(tenant, identifier, ".json"), kept.model_dump_json().encode(), "application/json")
            elif self.delete(tenant, identifier):
                deleted.append(identifier)
        self.blobs.delete(self._document_key(tenant, document_id))
        return deleted

    def delete(self, tenant: str, image_id: str) -> bool:
        """Remove an image's record (first, so it is no longer served) and files, whoever holds it."""
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

    def _list_image(self, tenant: str, document_id: str, image_id: str) -> None:
        held = self.images_of(tenant, document_id)
        if image_id not in held:
            self.blobs.write(self._document_key(tenant, document_id), json.dumps([*held, image_id]).encode(), "application/json")

    @staticmethod
    def _key(tenant: str, image_id: str, suffix: str) -> str:
        return f"{_tenant_folder(tenant)}/{image_id}{suffix}"

    @staticmethod
    def _document_key(tenant: str, document_id: str) -> str:
        """A document's list of image ids, named by a hash of its id (any string) under its tenant's folder."""
        return f"{_tenant_folder(tenant)}/documents/{hashlib.sha256(document_id.encode()).hexdigest()[:32]}.json"


def _tenant_folder(tenant: str) -> str:
    return hashlib.sha256(tenant.encode()).hexdigest()[:32]


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

