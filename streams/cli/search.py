"""`ragloop search`: the index alone (no database, no LLM), queried as the agent's retriever queries it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from schemas.settings import get_settings
from streams.cli.options import PRINCIPAL_HELP, ApiKeyOption, TenantOption, acting_as, console


def search(query: Annotated[str | None, typer.Argument(help="What to look for (not with --image).")] = None,
           mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
           tenant: TenantOption = "default",
           principal: Annotated[list[str] | None, typer.Option(help=PRINCIPAL_HELP)] = None,
           api_key: ApiKeyOption = None,
           k: Annotated[int, typer.Option(help="How many chunks to show.")] = 5,
           json_output: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
           image: Annotated[Path | None, typer.Option("--image", help="Search with this image (JPEG, PNG, WebP): similar "
                                                       "images, or with QUERY --images: images for a text.")] = None,
           images: Annotated[bool, typer.Option("--images", help="Find images for QUERY (CLIP) instead of chunks.")] = False) -> None:
    """Search the index directly (no LLM): the chunks the agent would see, with their scores; with
    `--image PATH` or `--images`, the images (needs RAGLOOP_CLIP_CHECKPOINT)."""
    from streams.services import Services

    if image is not None or images:
        if (image is None) == (query is None):
            raise typer.BadParameter("give either a QUERY (with --images) or --image PATH, not both")
        search_images(query, image, tenant=tenant, principal=principal, api_key=api_key, k=k, json_output=json_output)
        return
    if query is None:
        raise typer.BadParameter("give a QUERY to search for (or --image PATH)")
    if mode not in ("bm25", "dense", "hybrid"):
        raise typer.BadParameter(f"--mode {mode!r}: choose bm25, dense or hybrid")
    settings = get_settings()
    tenant, principals = acting_as(settings, tenant, principal, api_key)
    services = Services(settings)  # no store: a search reads the index only
    try:
        hits = services.retriever.retrieve(query, tenant=tenant, k=k, mode=mode, principals=principals)  # type: ignore[arg-type]
    finally:
        services.close()
    if json_output:
        print(json.dumps([{"document_id": h.chunk.document_id, "chunk_id": h.chunk.id, "score": h.score, "title": h.chunk.title,
                           "text": h.chunk.text} for h in hits], indent=2))
        return
    for n, hit in enumerate(hits, 1):
        snippet = " ".join(hit.chunk.text.split())[:160]
        print(f"{n:>2}. {hit.score:7.3f}  {hit.chunk.document_id}  {snippet}")
    if not hits:
        console.print(f"no hits in tenant {tenant!r} (is anything indexed? `ragloop ingest PATH`)")


def search_images(query: str | None, image: Path | None, *, tenant: str, principal: list[str] | None, api_key: str | None, k: int,
                  json_output: bool) -> None:
    """Text → images or image → similar images, on the configured index; a clear error when CLIP is off."""
    from indexing.images.search import ImageSearch
    from indexing.images.store import open_image_store
    from indexing.loaders import LoadError
    from models.clip import ClipUnavailable

    settings = get_settings()
    tenant, principals = acting_as(settings, tenant, principal, api_key)
    try:
        searcher = ImageSearch.from_settings(settings)
        if image is not None:
            if not image.is_file():
                raise typer.BadParameter(f"--image {image}: no such file")
            picture = open_image_store(settings).decode(image.read_bytes(), name=str(image)).image
            hits = searcher.similar_images(picture, tenant=tenant, k=k, principals=principals)
        else:
            hits = searcher.images_for_text(query or "", tenant=tenant, k=k, principals=principals)
    except (ClipUnavailable, LoadError) as error:
        raise typer.BadParameter(str(error)) from None
    if json_output:
        print(json.dumps([{"image_id": h.image.id, "url": h.url, "score": h.score, "caption": h.image.caption, "source": h.image.source,
                           "document_id": h.image.document_id} for h in hits], indent=2))
        return
    for n, hit in enumerate(hits, 1):
        print(f"{n:>2}. {hit.score:7.3f}  {hit.url}  {hit.image.caption[:120]}")
    if not hits:
        console.print(f"no images in tenant {tenant!r} (ingest some: `ragloop ingest photos/`)")
