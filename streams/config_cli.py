"""`ragloop config show`: the configuration a process started here would run with, so a
variable or TOML key that did not take effect is seen before a worker misbehaves."""

from __future__ import annotations

import json

import typer

from schemas.settings import Settings

config_app = typer.Typer(help="The effective configuration (environment, then RAGLOOP_CONFIG / ragloop.toml).",
                         no_args_is_help=True)


@config_app.command("show")
def show() -> None:
    """Print every setting, by section, as JSON; secrets are shown as ********** when set."""
    typer.echo(json.dumps(Settings().redacted(), indent=2))
