"""An image document through the ingest pipeline: decode under the limits, keep the file and a
thumbnail, embed it with CLIP and index the vector with the document's tenant, access list,
caption and source.

The document also gets a text form (its caption, else its title or file name) that goes through
the ordinary chunk pipeline, so the image is found by text search too and citations of it carry
its URL (`metadata["image_url"]`).

    images = ImageIngester.from_settings(settings)   # raises ClipUnavailable when CLIP is off
    document = images.ingest(data, tenant="acme", document_id="bike", caption="a red bicycle")
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexing.images.decode import DecodedImage, is_image
from indexing.images.index import ImageEntry, ImageIndex, open_image_index
from indexing.images.store import ImageStore, StoredImage, open_image_store
from indexing.loaders.errors import LoadError, UnsupportedFormatError
from indexing.types import SourceDocument
from models.clip import CLIP_OFF_MESSAGE, ClipModel, require_clip

if TYPE_CHECKING:
    from PIL import Image

    from schemas.settings import Settings

CAPTION_KEYS = ("caption", "alt", "alt_text", "description")
ENCODE_BATCH = 32


@dataclass(frozen=True)
class ImageInput:
    """One image to store and index, with what the index keeps about it."""

    data: bytes
    tenant: str
    document_id: str
    caption: str = ""
    source: str | None = None
    name: str = "the image"
    access: Sequence[str] = ()


@dataclass(frozen=True)
class ImageUpload:
    """An image document as an ingest event carries it (its caption in `metadata`, else its title)."""

    data: bytes
    tenant: str
    document_id: str
    title: str = ""
    source: str | None = None
    filename: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    access: list[str] = field(default_factory=list)


def caption_of(metadata: dict[str, Any], title: str = "") -> str:
    """The caption or alt text the caller gave (metadata `caption`/`alt`/…), else the title."""
    for key in CAPTION_KEYS:
        if isinstance(metadata.get(key), str) and metadata[key].strip():
            return str(metadata[key]).strip()
    return title


def image_document(stored: StoredImage, *, document_id: str, title: str = "", source: str | None = None, name: str = "",
                   metadata: dict[str, Any] | None = None) -> SourceDocument:
    """The text form of a stored image: its caption (else title or name) as text, its URL in the metadata, so text
    search finds it and a citation of it carries the URL a client shows."""
    metadata = dict(metadata or {}) | {"image_id": stored.id, "image_url": f"/v1/images/{stored.id}", "media_type": stored.media_type,
                                       "width": stored.width, "height": stored.height}
    return SourceDocument(id=document_id, tenant=stored.tenant, title=title or stored.caption, text=stored.caption or title or name,
                          source=source, metadata=metadata, access=list(stored.access))


class ImageIngester:
    """Stores, embeds and indexes images; one per process (it holds the CLIP model)."""

    def __init__(self, store: ImageStore, clip: ClipModel, index: ImageIndex) -> None:
        self.store, self.clip, self.index = store, clip, index

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageIngester:
        clip = require_clip(settings)
        index = open_image_index(settings.search.url, home=settings.home, dimension=clip.dimension,
                                 index_prefix=settings.search.opensearch_index)
        return cls(open_image_store(settings), clip, index)

    def decode(self, data: bytes, name: str) -> DecodedImage:
        return self.store.decode(data, name=name)

    def add(self, images: Sequence[ImageInput]) -> list[StoredImage | LoadError]:
        """Decode, store, CLIP-encode and index `images`, one result each in order: the stored record, or the
        `LoadError` that refused that image alone. Encoding runs in batches of `ENCODE_BATCH`, not one image
        at a time (a batch of one costs CLIP nearly three times as much per image); only one batch is held
        decoded at a time, so a poll of large photos does not hold all their pixels at once."""
        results: list[StoredImage | LoadError] = []
        for start in range(0, len(images), ENCODE_BATCH):
            ready: list[tuple[StoredImage, Image.Image]] = []
            for item in images[start:start + ENCODE_BATCH]:
                try:
                    decoded = self.decode(item.data, item.name)
                    stored = self.store.put(item.tenant, item.data, caption=item.caption, source=item.source,
                                            document_id=item.document_id, access=item.access, decoded=decoded)
                except LoadError as error:
                    results.append(error)
                    continue
                results.append(stored)
                ready.append((stored, decoded.image))
            if ready:
                vectors = self.clip.encode_images([picture for _, picture in ready])
                self.index.put([ImageEntry(id=s.id, tenant=s.tenant, document_id=s.document_id, caption=s.caption, source=s.source,
                                           media_type=s.media_type, access=list(s.access)) for s, _ in ready], vectors)
        return results

    def ingest_many(self, uploads: Sequence[ImageUpload]) -> list[SourceDocument | LoadError]:
        """Image documents, indexed together (see `add`); each is its document or the error that refused it."""
        images = [ImageInput(data=u.data, tenant=u.tenant, document_id=u.document_id, caption=caption_of(u.metadata, u.title),
                             source=u.source or u.filename, name=u.filename or u.source or u.document_id, access=u.access)
                  for u in uploads]
        return [outcome if isinstance(outcome, LoadError) else
                image_document(outcome, document_id=u.document_id, title=u.title, source=u.source or u.filename, name=i.name,
                               metadata=dict(u.metadata))
                for u, i, outcome in zip(uploads, images, self.add(images))]

    def ingest(self, data: bytes, *, tenant: str, document_id: str, title: str = "", source: str | None = None,
               filename: str | None = None, metadata: dict[str, Any] | None = None, access: Sequence[str] = ()) -> SourceDocument:
        """Index one image document; raises a `LoadError` for bytes that are not an acceptable image."""
        [outcome] = self.ingest_many([ImageUpload(data=data, tenant=tenant, document_id=document_id, title=title, source=source,
                                                  filename=filename, metadata=metadata or {}, access=list(access))])
        if isinstance(outcome, LoadError):
            raise outcome
        return outcome

    def delete_document(self, tenant: str, document_id: str) -> int:
        """Remove a deleted document's image vectors and release its stored images; returns how many vectors went.
        An image another document of the tenant also holds stays stored, served and indexed, its vector now naming
        that document (the index keeps one document per image, the last that brought it)."""
        held = self.store.images_of(tenant, document_id)
        self.store.release_document(tenant, document_id)
        for kept in filter(None, (self.store.get(tenant, image) for image in held)):
            if kept.document_id is not None:
                self.index.set_document(tenant, kept.id, kept.document_id)
        return self.index.delete_document(tenant, document_id)


class LazyImages:
    """The process's `ImageIngester`, built on the first image (loading CLIP costs seconds and memory
    that a text-only deployment never pays); `get` raises `UnsupportedFormatError` saying image
    features are off when no checkpoint is configured."""

    def __init__(self, settings: Settings | None) -> None:
        self._settings = settings
        self._ingester: ImageIngester | None = None
        self._lock = threading.Lock()

    @classmethod
    def off(cls) -> LazyImages:
        """Image features off: every image is refused with `CLIP_OFF_MESSAGE`."""
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._settings is not None and self._settings.clip.checkpoint is not None

    @property
    def max_embedded(self) -> int:
        """Most images read from inside one PDF or HTML document (RAGLOOP_IMAGES_MAX_EMBEDDED)."""
        return self._settings.images.max_embedded if self._settings is not None else 0

    def get(self) -> ImageIngester:
        if self._settings is None or self._settings.clip.checkpoint is None:
            raise UnsupportedFormatError(CLIP_OFF_MESSAGE)
        with self._lock:
            if self._ingester is None:
                self._ingester = ImageIngester.from_settings(self._settings)
            return self._ingester


def check_image_upload(settings: Settings, data: bytes, *, name: str = "", media_type: str | None = None) -> bool:
    """For the HTTP route: whether the upload is an image, raising a `LoadError` at once when image
    features are off or the bytes break a limit or do not decode (413/422 before anything is queued)."""
    if not is_image(name=name, media_type=media_type):
        return False
    if settings.clip.checkpoint is None:
        raise UnsupportedFormatError(CLIP_OFF_MESSAGE)
    open_image_store(settings).decode(data, name=name or "the image")
    return True
