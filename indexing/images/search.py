"""Searching with and for images: text → images, image → similar images, image → related documents.

Text and images meet in CLIP's space: a text query is CLIP-encoded and compared with the image
vectors. An image finds related documents through the captions of the images most like it: their
text is the query of the ordinary text retriever, so the answer is the tenant's chunks (with their
access lists), not a guess from pixels alone.

    search = ImageSearch(clip, index, retriever)
    search.images_for_text("a red bicycle", tenant="acme", k=5)
    search.similar_images(image, tenant="acme", k=5)
    search.documents_for_image(image, tenant="acme", k=5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from indexing.images.index import ImageHit, ImageIndex, open_image_index
from indexing.types import SearchHit
from models.clip import ClipModel, require_clip

if TYPE_CHECKING:
    from PIL import Image

    from schemas.settings import Settings


class TextRetriever(Protocol):
    def retrieve(self, query: str, *, tenant: str = "default", k: int = 5, mode: None = None,
                 principals: Sequence[str] | None = None) -> list[SearchHit]: ...


class ImageSearch:
    def __init__(self, clip: ClipModel, index: ImageIndex, retriever: TextRetriever | None = None) -> None:
        self.clip, self.index, self.retriever = clip, index, retriever

    @classmethod
    def from_settings(cls, settings: Settings, retriever: TextRetriever | None = None) -> ImageSearch:
        """Raises `ClipUnavailable` (with what to set) when image features are off."""
        clip = require_clip(settings)
        return cls(clip, open_image_index(settings.search.url, home=settings.home, dimension=clip.dimension,
                                          index_prefix=settings.search.opensearch_index), retriever)

    def images_for_text(self, text: str, *, tenant: str, k: int = 5, principals: Sequence[str] | None = None) -> list[ImageHit]:
        if not text.strip():
            return []
        return self.index.search(tenant=tenant, vector=self.clip.encode_texts([text])[0], k=k, principals=principals)

    def similar_images(self, image: Image.Image, *, tenant: str, k: int = 5, principals: Sequence[str] | None = None,
                       exclude: str | None = None) -> list[ImageHit]:
        return self.index.search(tenant=tenant, vector=self.clip.encode_images([image])[0], k=k, principals=principals, exclude=exclude)

    def documents_for_image(self, image: Image.Image, *, tenant: str, k: int = 5,
                            principals: Sequence[str] | None = None) -> list[SearchHit]:
        """The chunks the captions of the most similar images find (empty without a retriever or captions)."""
        if self.retriever is None:
            return []
        captions = [hit.image.caption for hit in self.similar_images(image, tenant=tenant, k=3, principals=principals) if hit.image.caption]
        if not captions:
            return []
        return self.retriever.retrieve(" ".join(captions), tenant=tenant, k=k, principals=principals)
