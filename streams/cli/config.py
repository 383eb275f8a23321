"""`ragloop config show`: the configuration every command runs with (file, environment, defaults),
with its secrets redacted, so it can be pasted into an issue or compared between machines."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from schemas.settings import get_settings

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show(toml: Annotated[bool, typer.Option("--toml", help="Print TOML (the ragloop.toml format) instead of JSON.")] = False) -> None:
    """Print the effective configuration (ragloop.toml or RAGLOOP_CONFIG, then RAGLOOP_* variables), secrets redacted."""
    values = get_settings().redacted()
    print(_toml(values) if toml else json.dumps(values, indent=2))


def _toml(values: dict[str, Any], table: str = "") -> str:
    """A minimal TOML writer for settings: scalars and lists first, then one [table] per nested section;
    unset (None) settings are left out, as TOML has no null."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items() if value is not None and not isinstance(value, dict)]
    for key, value in values.items():
        if isinstance(value, dict):
            name = f"{table}.{key}" if table else key
            lines += ["", f"[{name}]", _toml(value, name)]
    return "\n".join(lines)
