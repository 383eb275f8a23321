"""What every `ragloop` command shares: where it prints, and who it acts as (tenant, principals, API key)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from schemas.settings import Settings

console = Console(stderr=True, soft_wrap=True)  # progress, summaries, errors
listing = Console(soft_wrap=True)  # what a list command lists goes to stdout, so it can be piped


TenantOption = Annotated[str, typer.Option(envvar="RAGLOOP_TENANT", help="The tenant to act for.")]
ApiKeyOption = Annotated[str | None, typer.Option("--api-key", envvar="RAGLOOP_API_KEY", show_default=False,
                                                  help="Act as this key of RAGLOOP_API_KEYS, as the HTTP API would: its tenant and "
                                                       "principals replace --tenant and --principal.")]
PRINCIPAL_HELP = ("Ask as this principal (repeatable): documents ingested with an access list are found only by a "
                  "principal on it; without one, only the tenant's unrestricted documents.")


def acting_as(settings: Settings, tenant: str, principals: list[str] | None, api_key: str | None) -> tuple[str, list[str]]:
    """The tenant and principals a command acts as: the API key's when one is given, else the flags'."""
    if not api_key:
        return tenant, principals or []
    from streams.gateway.auth import parse_api_keys

    grant = parse_api_keys(settings).get(api_key)
    if grant is None:
        raise typer.BadParameter("--api-key / RAGLOOP_API_KEY is not one of the keys in RAGLOOP_API_KEYS")
    return grant.tenant, list(grant.principals)
