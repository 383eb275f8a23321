"""`ragloop train --from-feedback`: one training run of a tenant's adapter, in this process, without a
broker — the same domain function the trainer worker calls (`trainers.run.run_training`)."""

from __future__ import annotations

from typing import Annotated

import typer

from schemas.events import new_id
from schemas.settings import get_settings
from streams.cli.options import TenantOption, console, listing


def train(from_feedback: Annotated[bool, typer.Option("--from-feedback", help="Train on the tenant's corrections and up-voted "
                                                      "answers (the only source today).")] = False,
          tenant: TenantOption = "default",
          progress: Annotated[bool, typer.Option(help="--no-progress hides the training progress bar.")] = True) -> None:
    """Train, gate and (if it passes) start a canary of the tenant's adapter now, whatever the learning policy says;
    prints the outcome. With a broker configured (RAGLOOP_BROKER_URL) the move is announced on `model.updated`
    (through the outbox), so running agents serve the canary at once; every agent also re-reads the registry
    every RAGLOOP_LLM_SERVING_TTL_S seconds, and at start."""
    if not from_feedback:
        console.print("[red]say what to train on[/]: --from-feedback (the tenant's corrections)")
        raise typer.Exit(2)
    from streams.services import Services
    from streams.stores import Stores
    from streams.workers.trainer import training_kit
    from trainers.run import run_training
    from trainers.train_policy import describe

    settings = get_settings()
    services = Services(settings, Stores.from_settings(settings))
    try:
        services.stores.registry.ensure_base_version(settings.llm.model_family)
        kit = training_kit(services)
        console.print(describe(kit.policy, settings))
        run_id = f"cli-{new_id()}"
        claimed = services.stores.feedback.claim_corrections(run_id, tenant)  # "since the last run" starts after this one
        console.print(f"run {run_id}: {len(claimed)} corrections of tenant {tenant!r} new since the last run")
        with console.status("starting") as status:
            def stage(text: str) -> None:
                status.update(text)
                console.print(f"· {text}")

            outcome = run_training(kit, run_id, tenant, settings.llm.model_family, progress=progress, stage=stage)
        if outcome.changed and outcome.version is not None:
            from streams.cli.announce import deliver

            if deliver(settings, services.stores.db):
                console.print(f"announced {outcome.version} ({outcome.version_state}) on model.updated")
            else:
                console.print(f"agents load {outcome.version} from the registry within RAGLOOP_LLM_SERVING_TTL_S="
                              f"{settings.llm.serving_ttl_s:g}s, or sooner: its model.updated waits in the outbox for a running ragloop's relay")
    finally:
        services.close()
    colour = {"gated": "green", "rejected": "yellow"}.get(outcome.state, "red")
    listing.print(f"[{colour}]{outcome.state}[/] {outcome.version or '-'} {outcome.version_state or ''}".rstrip())
    console.print(f"reason: {outcome.reason}")
    for name, value in sorted(outcome.metrics.items()):
        console.print(f"  {name:22} {value:.4f}")
    if outcome.state not in ("gated", "rejected"):
        raise typer.Exit(1)
