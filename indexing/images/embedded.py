"""Images inside an ingested PDF or HTML page, indexed as image documents of that page.

Each image the loader exposes (indexing/loaders/embedded_images.py) goes through the image pipeline
with the page's tenant, access list and source, and the page's document id, so image search finds
it, cites the page, and deleting the page removes it. Its caption is its `alt` text, else the
page's title. The same limits and bomb checks as an uploaded image apply to each one.

A bad embedded image fails only itself: the text document is indexed either way, and its metadata
records what was indexed (`embedded_images`: image ids) and what was refused and why
(`embedded_image_failures`).

    document = with_embedded_images(document, data, fmt="pdf", images=ingester, limit=50)
"""

from __future__ import annotations

import structlog

from indexing.images.ingest import ImageIngester, ImageInput
from indexing.images.store import StoredImage
from indexing.loaders.embedded_images import embedded_images
from indexing.types import SourceDocument

log = structlog.get_logger(__name__)


def with_embedded_images(document: SourceDocument, data: bytes, *, fmt: str, images: ImageIngester, limit: int,
                         charset: str | None = None) -> SourceDocument:
    """`document` with its embedded images indexed and recorded in its metadata (unchanged when it has none)."""
    name = document.source or document.id
    try:
        found, refused = embedded_images(data, fmt=fmt, name=name, limit=limit, max_pixels=images.store.max_pixels, charset=charset)
    except Exception as error:  # noqa: BLE001 — whatever breaks in extraction, the text document is already loaded
        log.warning("embedded images not read", document_id=document.id, error=str(error))
        return _recorded(document, [], [{"name": "all", "reason": f"the images could not be listed ({type(error).__name__}: {error})"}])
    failures = [{"name": f.name, "reason": f.reason} for f in refused]
    inputs = [ImageInput(data=f.data, tenant=document.tenant, document_id=document.id, caption=f.caption or document.title,
                         source=document.source, name=f"{name}: {f.name}", access=list(document.access)) for f in found]
    indexed: list[str] = []
    for item, outcome in zip(found, images.add(inputs)):
        if isinstance(outcome, StoredImage):
            indexed.append(outcome.id)
        else:
            failures.append({"name": item.name, "reason": str(outcome)})
    return _recorded(document, indexed, failures)


def _recorded(document: SourceDocument, indexed: list[str], failures: list[dict[str, str]]) -> SourceDocument:
    """The ids of the indexed images (served at /v1/images/<id>) and the refusals, in the document's metadata."""
    if not indexed and not failures:
        return document
    if failures:
        log.info("embedded images refused", document_id=document.id, refused=failures)
    return document.model_copy(update={"metadata": {**document.metadata, "embedded_images": indexed,
                                                    "embedded_image_failures": failures}})
