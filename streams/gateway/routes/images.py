"""Images: the stored files and thumbnails (`GET /v1/images/{id}`), and search with or for images.

Every read is scoped to the caller's tenant (its API key's, when auth is on) and access list: an
image of another tenant, or one the caller's principals may not see, answers the same 404 as an
unknown id. With no CLIP checkpoint configured, search answers 422 saying what to set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field, model_validator

from indexing.images.decode import http_status
from indexing.images.search import ImageSearch
from indexing.images.store import StoredImage, open_image_store
from indexing.loaders import LoadError
from models.clip import ClipUnavailable, require_clip
from schemas.events import Identifier, Principal
from streams.gateway.auth import principals_of, tenant_of
from streams.gateway.context import GatewayContext


class ImageSearchIn(BaseModel):
    """A text or an image (base64) to search with; `target` says what comes back."""

    tenant: Identifier = "default"
    text: str | None = Field(None, min_length=1, max_length=2000, description="Find images that show this (CLIP text embedding).")
    image_b64: str | None = Field(None, description="A JPEG, PNG or WebP image, base64: find similar images or related documents.")
    target: Literal["images", "documents"] = Field("images", description="`images` (similar images) or `documents` "
                                                   "(chunks related through the captions of similar images; needs `image_b64`).")
    k: int = Field(5, ge=1, le=100)
    principals: list[Principal] = Field(default_factory=list, description="Read restricted images as these (auth off only).")

    @model_validator(mode="after")
    def _one_query(self) -> ImageSearchIn:
        if (self.text is None) == (self.image_b64 is None):
            raise ValueError("give exactly one of `text` or `image_b64`")
        if self.target == "documents" and self.image_b64 is None:
            raise ValueError("target=documents searches with an image: give `image_b64`")
        return self


class ImageOut(BaseModel):
    id: str
    url: str
    thumbnail_url: str
    caption: str = ""
    source: str | None = None
    document_id: str | None = None
    score: float


class DocumentHitOut(BaseModel):
    document_id: str
    chunk_id: str
    title: str
    text: str
    score: float


class ImageSearchOut(BaseModel):
    images: list[ImageOut] = Field(default_factory=list)
    documents: list[DocumentHitOut] = Field(default_factory=list)


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter(prefix="/v1/images", tags=["images"])
    settings = ctx.settings
    store = open_image_store(settings)
    searches: list[ImageSearch] = []

    def searcher() -> ImageSearch:
        if not searches:
            require_clip(settings)  # off: say so at once, before the text retriever (the embedder) is loaded for nothing
            searches.append(ImageSearch.from_settings(settings, ctx.runtime.services.retriever))
        return searches[0]

    async def visible(image_id: str, request: Request, tenant: str, principals: list[str]) -> StoredImage:
        record = await asyncio.to_thread(store.get, tenant_of(request, tenant), image_id)
        if record is None or not record.visible_to(principals_of(request, principals)):
            raise HTTPException(404, f"unknown image {image_id!r}")
        return record

    async def served(image_id: str, request: Request, tenant: str, principals: list[str], *, thumbnail: bool) -> Response:
        """The image file (its own media type) or its JPEG thumbnail, to a caller who may see the image."""
        record = await visible(image_id, request, tenant, principals)
        data = await asyncio.to_thread(store.thumbnail if thumbnail else store.read, record.tenant, image_id)
        if data is None:
            raise HTTPException(404, f"unknown image {image_id!r}")
        return Response(data, media_type="image/jpeg" if thumbnail else record.media_type, headers={"Cache-Control": "private, max-age=3600"})

    @api.get("/{image_id}", response_class=Response, responses={200: {"content": {"image/*": {}}}, 404: {"description": "No such image."}})
    async def get_image(image_id: str, request: Request, tenant: Annotated[str, Query(max_length=200)] = "default",
                        principal: Annotated[list[str] | None, Query()] = None) -> Response:
        """The original image file (its own media type)."""
        return await served(image_id, request, tenant, principal or [], thumbnail=False)

    @api.get("/{image_id}/thumbnail", response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such image."}})
    async def get_thumbnail(image_id: str, request: Request, tenant: Annotated[str, Query(max_length=200)] = "default",
                            principal: Annotated[list[str] | None, Query()] = None) -> Response:
        """A JPEG thumbnail (longest side RAGLOOP_IMAGES_THUMBNAIL_PX)."""
        return await served(image_id, request, tenant, principal or [], thumbnail=True)

    @api.post("/search", response_model=ImageSearchOut, responses={422: {"description": "Bad image, or image features are off."},
                                                                   413: {"description": "Image over a limit."}})
    async def search_images(body: ImageSearchIn, request: Request) -> ImageSearchOut:
        """Text → images, image → similar images, or image → related documents."""
        tenant, principals = tenant_of(request, body.tenant), principals_of(request, body.principals)
        try:
            search = await asyncio.to_thread(searcher)
            if body.text is not None:
                hits = await asyncio.to_thread(search.images_for_text, body.text, tenant=tenant, k=body.k, principals=principals)
                return ImageSearchOut(images=[image_out(h.image.id, h.image.caption, h.image.source, h.image.document_id, h.score)
                                              for h in hits])
            image = (await asyncio.to_thread(store.decode, decode_b64(body.image_b64 or ""), name="image_b64")).image
        except ClipUnavailable as error:
            raise HTTPException(422, str(error)) from None
        except LoadError as error:
            raise HTTPException(http_status(error), f"image_b64: {error}") from None
        if body.target == "documents":
            chunks = await asyncio.to_thread(search.documents_for_image, image, tenant=tenant, k=body.k, principals=principals)
            return ImageSearchOut(documents=[DocumentHitOut(document_id=h.chunk.document_id, chunk_id=h.chunk.id, title=h.chunk.title,
                                                            text=h.chunk.text, score=h.score) for h in chunks])
        hits = await asyncio.to_thread(search.similar_images, image, tenant=tenant, k=body.k, principals=principals)
        return ImageSearchOut(images=[image_out(h.image.id, h.image.caption, h.image.source, h.image.document_id, h.score) for h in hits])

    return api


def image_out(image_id: str, caption: str, source: str | None, document_id: str | None, score: float) -> ImageOut:
    return ImageOut(id=image_id, url=f"/v1/images/{image_id}", thumbnail_url=f"/v1/images/{image_id}/thumbnail", caption=caption,
                    source=source, document_id=document_id, score=score)


def decode_b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, "image_b64: not valid base64") from None


