"""The document a `docs.ingest` event carries, whichever body it came with: a URL, file bytes or text.

Choosing the loader is indexing's knowledge, not the ingest worker's: the worker hands over the
event and maps a ``LoadError`` to a retry or a dead letter by its ``retryable`` flag.

    >>> load_ingest_event(event, max_bytes=64 << 20, timeout_s=20, allow_private=False)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

from indexing.loaders import load_bytes
from indexing.loaders.errors import CorruptDocumentError, LoadError, UnsupportedFormatError
from indexing.loaders.formats import detect_format, split_media_type
from indexing.types import SourceDocument
from indexing.url_fetch import fetch_url, load_fetched
from schemas.events import DocumentIngest

if TYPE_CHECKING:
    from indexing.images.ingest import LazyImages


def load_ingest_event(event: DocumentIngest, *, max_bytes: int, timeout_s: float, allow_private: bool,
                      images: LazyImages | None = None, verify: ssl.SSLContext | bool = True) -> SourceDocument:
    """Fetch the event's `url` (within the limits and the SSRF guard), parse its `content_b64`, or take its
    `text` as is; image bytes (JPEG, PNG, WebP) go to `images` (indexing/images/ingest.py), and so do the images
    inside a PDF or HTML file when image features are on (indexing/images/embedded.py). Raises
    ``LoadError``; a ``FetchError`` with ``retryable`` set may succeed later."""
    if event.url is not None:
        fetched = fetch_url(event.url, max_bytes=max_bytes, timeout_s=timeout_s, allow_private=allow_private, verify=verify)
        document = load_fetched(fetched, tenant=event.tenant, document_id=event.document_id, title=event.title or None,
                                metadata=event.metadata, access=event.access, max_bytes=max_bytes)
        return with_images_inside(document, fetched.content, media_type=fetched.content_type, name=fetched.final_url, images=images)
    if event.content_b64 is not None:
        data = _content(event.content_b64)
        if is_image_event(event):
            [outcome] = load_image_events([event], images=images)
            if isinstance(outcome, LoadError):
                raise outcome
            return outcome
        document = load_bytes(data, media_type=event.media_type, filename=event.filename, tenant=event.tenant,
                              document_id=event.document_id, source=event.source, title=event.title or None,
                              metadata=event.metadata, access=event.access, max_bytes=max_bytes)
        return with_images_inside(document, data, media_type=event.media_type, name=event.filename or "", images=images)
    return SourceDocument(id=event.document_id, tenant=event.tenant, title=event.title, text=event.text or "",
                          source=event.source, metadata=event.metadata, access=event.access)


def with_images_inside(document: SourceDocument, data: bytes, *, media_type: str | None, name: str,
                       images: LazyImages | None) -> SourceDocument:
    """The document with the images inside it indexed (indexing/images/embedded.py) when it is a PDF or HTML file and
    image features are on; as it is otherwise."""
    if images is None or not images.enabled or images.max_embedded <= 0:
        return document
    try:
        fmt = detect_format(media_type=media_type, name=name, head=data[:1024]).name
    except UnsupportedFormatError:  # a compressed file (`.gz`), read by the text loader only
        return document
    if fmt not in ("pdf", "html"):
        return document
    from indexing.images.embedded import with_embedded_images

    return with_embedded_images(document, data, fmt=fmt, images=images.get(), limit=images.max_embedded,
                                charset=split_media_type(media_type)[1])


def is_image_event(event: DocumentIngest) -> bool:
    """Whether the event carries an image file (JPEG, PNG, WebP) rather than a text document."""
    from indexing.images.decode import is_image

    return event.content_b64 is not None and is_image(name=event.filename or "", media_type=event.media_type)


def load_image_events(events: Sequence[DocumentIngest], *, images: LazyImages | None) -> list[SourceDocument | LoadError]:
    """Image documents, stored and indexed together so CLIP encodes them in batches (indexing/images/ingest.py);
    each outcome is its document or the `LoadError` that refused it alone."""
    from indexing.images.ingest import ImageUpload, LazyImages

    outcomes: list[SourceDocument | LoadError | None] = []
    uploads: list[ImageUpload] = []
    for event in events:
        try:
            data = _content(event.content_b64 or "")
        except LoadError as error:
            outcomes.append(error)
            continue
        outcomes.append(None)
        uploads.append(ImageUpload(data=data, tenant=event.tenant, document_id=event.document_id, title=event.title, source=event.source,
                                   filename=event.filename, metadata=dict(event.metadata), access=list(event.access)))
    try:
        ingester = (images or LazyImages.off()).get() if uploads else None
    except LoadError as off:  # image features are off: every image is refused saying so
        return [outcome if outcome is not None else off for outcome in outcomes]
    indexed = iter(ingester.ingest_many(uploads) if ingester is not None else [])
    return [outcome if outcome is not None else next(indexed) for outcome in outcomes]


def _content(content_b64: str) -> bytes:
    try:
        return base64.b64decode(content_b64, validate=True)
    except binascii.Error as error:
        raise CorruptDocumentError(f"content_b64 is not valid base64: {error}") from error
