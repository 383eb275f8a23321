"""Image search as agent tools: "show me …" finds the tenant's images for a text; an attached image
finds similar images and the documents related to it.

Results are `SearchHit`s whose chunk stands for the image (text: its caption; metadata: `image_id`,
`image_url` = `/v1/images/{id}`, `thumbnail_url`), so they are numbered, cited and returned like
passages, and a client shows the image from the URL in the citation.

    tools = image_tools(ImageSearch.from_settings(settings, retriever))   # [] when CLIP is off: see `load_image_tools`
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from agents.tools.base import Tool, ToolInput, ToolOutput
from indexing.images.index import ImageHit
from indexing.images.search import ImageSearch
from indexing.types import Chunk, SearchHit

if TYPE_CHECKING:
    from PIL import Image

# "show me …", "picture/photo/image of …", "what does X look like": the request wants to see something
SHOW_TRIGGERS = (r"\bshow me\b", r"\b(pictures?|photos?|photographs?|images?|pics?)\s+of\b", r"\bwhat does .+ look like\b",
                 r"\bfind (me )?(an? )?(pictures?|photos?|images?)\b")


class ImageToolInput(ToolInput):
    k: int = Field(4, ge=1, le=50)
    images: list[str] = Field(default_factory=list, description="Attached images, base64 (or `data:` URLs).")


class ImageToolOutput(ToolOutput):
    """`hits` stand for images (see the module docstring) or, for related documents, are chunks."""


def image_hit(hit: ImageHit) -> SearchHit:
    """An image as a citable passage carrying its URLs."""
    image = hit.image
    chunk = Chunk(id=image.id, document_id=image.document_id or image.id, tenant=image.tenant, ordinal=0,
                  text=image.caption or "(image without caption)", title=image.caption,
                  metadata={"image_id": image.id, "image_url": hit.url, "thumbnail_url": f"{hit.url}/thumbnail",
                            "source": image.source},
                  access=image.access)
    return SearchHit(chunk=chunk, score=hit.score)


def decode_attached(value: str) -> bytes:
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"an attached image is not valid base64: {error}") from error


def attached_picture(value: str) -> Image.Image:
    """An attached image (base64 or a `data:` URL), decoded to RGB; it was checked against the limits at the door."""
    from PIL import Image

    with Image.open(io.BytesIO(decode_attached(value))) as picture:
        return picture.convert("RGB")


class ImageSearchTool(Tool[ImageToolInput, ImageToolOutput]):
    """Text → images of the tenant (CLIP); with an attached image, the images most like it."""

    name: ClassVar[str] = "image_search"
    description: ClassVar[str] = "Find the tenant's images that show what the request describes, or that look like an attached image."
    input_model: ClassVar[type[ToolInput]] = ImageToolInput
    output_model: ClassVar[type[ToolOutput]] = ImageToolOutput
    triggers: ClassVar[tuple[str, ...]] = SHOW_TRIGGERS

    def __init__(self, search: ImageSearch) -> None:
        self.search = search

    def run(self, args: ImageToolInput) -> ImageToolOutput:
        if args.images:
            hits = self.search.similar_images(attached_picture(args.images[0]), tenant=args.tenant, k=args.k, principals=args.principals)
        else:
            hits = self.search.images_for_text(args.query, tenant=args.tenant, k=args.k, principals=args.principals)
        return ImageToolOutput(hits=[image_hit(h) for h in hits])


class ImageDocumentsTool(Tool[ImageToolInput, ImageToolOutput]):
    """An attached image → the tenant's documents related to it (through the captions of similar images)."""

    name: ClassVar[str] = "image_documents"
    description: ClassVar[str] = "Find documents about what an attached image shows."
    input_model: ClassVar[type[ToolInput]] = ImageToolInput
    output_model: ClassVar[type[ToolOutput]] = ImageToolOutput

    def __init__(self, search: ImageSearch) -> None:
        self.search = search

    def run(self, args: ImageToolInput) -> ImageToolOutput:
        if not args.images:
            return ImageToolOutput(text="no image was attached")
        hits = self.search.documents_for_image(attached_picture(args.images[0]), tenant=args.tenant, k=args.k, principals=args.principals)
        return ImageToolOutput(hits=hits)


def image_tools(search: ImageSearch) -> list[Tool]:
    return [ImageSearchTool(search), ImageDocumentsTool(search)]
