"""`ragloop search`: the index alone (no database, no LLM), queried as the agent's retriever queries it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from schemas.settings import get_settings
from streams.cli.options import PRINCIPAL_HELP, ApiKeyOption, TenantOption, acting_as, console


def search(query: Annotated[str, typer.Argument(help="What to look for.")],
           mode: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "hybrid",
           tenant: TenantOption = "default",
           principal: Annotated[list[str] | None, typer.Option(help=PRINCIPAL_HELP)] = None,
           api_key: ApiKeyOption = None,
           k: Annotated[int, typer.Option(help="How many chunks to show.")] = 5,
           json_output: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False) -> None:
    """Search the index directly (no LLM): the chunks the agent would see, with their scores."""
    from streams.services import Services

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
