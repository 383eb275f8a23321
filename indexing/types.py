"""Typed values that flow through indexing: source documents, chunks and search hits.

These are the contracts between loaders, the chunker, the ingest pipeline, the search
backends and the retriever; everything else in ``indexing/`` speaks only these types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

SearchMode = Literal["bm25", "dense", "hybrid"]


class SourceDocument(BaseModel):
    """A whole document as loaded, before chunking.

    ``id`` is the caller's stable document id (re-ingesting the same id replaces the document);
    ``access`` lists the principals allowed to see it and is copied onto every chunk.
    """

    id: str
    tenant: str = "default"
    title: str = ""
    text: str
    source: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    access: list[str] = Field(default_factory=list)


class Chunk(BaseModel):
    """One retrievable passage of a document.

    ``id`` is a content hash of (tenant, document id, text), so re-ingesting identical content
    yields identical ids and index writes are idempotent.
    """

    id: str
    document_id: str
    tenant: str
    ordinal: int
    text: str
    title: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    access: list[str] = Field(default_factory=list)

    def embedding_text(self) -> str:
        """The text given to the embedder: the title gives a passage its topic."""
        return f"{self.title}\n{self.text}" if self.title else self.text


class SearchHit(BaseModel):
    """A chunk with the score that ranked it (comparable only within one result list)."""

    chunk: Chunk
    score: float


class Embedder(Protocol):
    """What indexing needs from a text embedder (``models.embedder.TextEmbedder`` fits):
    L2-normalised float32 vectors of a fixed dimension."""

    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...
