"""A generated image as a document of its tenant, so it can be found again later.

The picture goes into the one image store (indexing/images/store.py) like an ingested image, with
its prompt as caption and its generation job as source. With a CLIP checkpoint it is embedded and
indexed too, so text → image and image → image search find it, tenant-scoped; without one it is
still stored and served, and its text form (the prompt) is found by text search.

    document = generated_image_document(png, tenant="acme", job_id="3f2a…", prompt="a red bicycle",
                                        source="/v1/images/generations/3f2a…", store=store, images=images)
    document.metadata["image_url"]    # /v1/images/img-…
"""

from __future__ import annotations

from indexing.images.ingest import LazyImages, image_document
from indexing.images.store import ImageStore
from indexing.types import SourceDocument


def generated_document_id(job_id: str) -> str:
    return f"generated-image-{job_id}"


def generated_image_document(png: bytes, *, tenant: str, job_id: str, prompt: str, source: str, store: ImageStore,
                             images: LazyImages) -> SourceDocument:
    """Store (and with CLIP, index) the image; returns the document whose text form the ingest pipeline indexes."""
    document_id = generated_document_id(job_id)
    title = f"Generated image: {prompt[:120]}"
    metadata = {"kind": "generated_image", "job_id": job_id, "caption": prompt}
    if images.enabled:
        return images.get().ingest(png, tenant=tenant, document_id=document_id, title=title, source=source, filename=f"{job_id}.png",
                                   metadata=metadata)
    stored = store.put(tenant, png, caption=prompt, source=source, document_id=document_id)
    return image_document(stored, document_id=document_id, title=title, source=source, metadata=metadata)
