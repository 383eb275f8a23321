"""API keys mapped to tenants: who is calling `/v1/*`, and which tenant's data they may touch.

With auth on (`RAGLOOP_AUTH=on`, or `auto` on a `kafka://` broker) every `/v1/*` route except the
webhooks (which carry signatures instead) needs `Authorization: Bearer <key>` (what OpenAI clients
send) or `X-API-Key: <key>`; `RAGLOOP_API_KEYS=key1=tenantA,key2=tenantB|alice|team-a` says which
tenant each key acts for and, after `|`, the principals it reads restricted documents as (documents
ingested with an access list). The dependency records both on `request.state`; routes call
`tenant_of(request, body.tenant)` and `principals_of(request, body.principals)` so the key wins over
whatever the body names: a caller cannot claim principals its key was not given. A task or
document addressed by path (`/v1/tasks/{task_id}`, `/v1/documents/{document_id}`) that belongs to
another tenant, or to principals the key does not hold, answers 404, exactly as if it did not
exist, so ids cannot be probed across tenants or principals.

    app.include_router(router, dependencies=[Depends(api_key_auth(ctx))])
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, NamedTuple

import structlog
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, TypeAdapter, ValidationError

from schemas.events import Principal, principals_fingerprint
from schemas.settings import Settings
from schemas.tables import TaskRecord
from streams.gateway.context import GatewayContext

log = structlog.get_logger(__name__)
_bearer = HTTPBearer(auto_error=False, description="An API key from RAGLOOP_API_KEYS (what OpenAI clients send).")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from RAGLOOP_API_KEYS.")


_PRINCIPALS = TypeAdapter(Annotated[list[Principal], Field(max_length=100)])
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:@/-]{1,200}")  # schemas.events.Identifier: what a tenant may be


class KeyGrant(NamedTuple):
    """What one API key may do: act for `tenant`, reading restricted documents as `principals`."""

    tenant: str
    principals: tuple[str, ...] = ()


def parse_api_keys(settings: Settings) -> dict[str, KeyGrant]:
    """`key1=tenantA,key2=tenantB|alice|team-a` → {key: KeyGrant}. Raises ValueError naming the bad entry."""
    raw = settings.security.api_keys.get_secret_value() if settings.security.api_keys else ""
    return {key: grant for (key,), grant in parse_grants(raw, "RAGLOOP_API_KEYS", "`key=tenant` or `key=tenant|principal|…` "
                                                         "(expected e.g. `key1=tenantA,key2=tenantB|alice|team-a`)")}


def parse_grants(raw: str, setting: str, shape: str, names: int = 1) -> list[tuple[tuple[str, ...], KeyGrant]]:
    """Comma-separated `name=…=tenant|principal|…` entries, `names` names before the grant → [(names, grant)].
    Shared by API keys and webhook keys; raises ValueError naming `setting`, the bad entry and the `shape` expected."""
    grants: list[tuple[tuple[str, ...], KeyGrant]] = []
    for number, entry in enumerate((e.strip() for e in raw.split(",")), start=1):
        if not entry:
            continue
        *found, grant = (part.strip() for part in entry.split("=", names))
        tenant, *principals = (part.strip() for part in grant.split("|"))
        if len(found) != names or not all(found) or not _IDENTIFIER.fullmatch(tenant) or not all(principals):
            raise ValueError(f"{setting} entry {number} is not {shape}")
        try:
            _PRINCIPALS.validate_python(principals)
        except ValidationError as error:
            raise ValueError(f"{setting} entry {number}: principals must be 1-200 printable characters each, "
                             f"at most 100 ({error.errors()[0]['msg']})") from None
        grants.append((tuple(found), KeyGrant(tenant, tuple(principals))))
    return grants


def grant_of(request: Request) -> KeyGrant | None:
    """The API key's grant of this request; None when auth is off."""
    return getattr(request.state, "grant", None)


def tenant_of(request: Request, requested: str) -> str:
    """The tenant a request acts for: its API key's tenant when auth is on, else the one it asked for."""
    grant = grant_of(request)
    return grant.tenant if grant else requested


def principals_of(request: Request, requested: list[str]) -> list[str]:
    """Who a request reads as: its API key's principals when auth is on, else the ones it named."""
    grant = grant_of(request)
    return list(grant.principals) if grant else requested


def owns_task(grant: KeyGrant | None, task: TaskRecord) -> bool:
    """A task belongs to the tenant *and* the principals that asked it: its answer may quote
    restricted documents, so another key of the same tenant must not read, follow, cancel or
    rate it. Without auth (no grant) every task is reachable, as everything else is."""
    if grant is None:
        return True
    return task.tenant == grant.tenant and task.asked_as() == principals_fingerprint(grant.principals)


def api_key_auth(ctx: GatewayContext) -> Callable[..., Awaitable[None]]:
    """The router dependency: 401 without a known key (auth on); sets `request.state.grant`."""
    enabled = ctx.settings.auth_enabled
    keys = parse_api_keys(ctx.settings)
    if enabled and ctx.settings.security.auth == "auto" and ctx.settings.broker.is_embedded:
        log.info("API-key auth is on: RAGLOOP_API_KEYS is set (RAGLOOP_AUTH=off turns it off)", keys=len(keys))
    if enabled and not keys:
        log.warning("API-key auth is on but RAGLOOP_API_KEYS is empty: every /v1 request will be refused",
                    auth=ctx.settings.security.auth, broker=ctx.settings.broker.url.split("://")[0])

    async def authenticate(request: Request,
                           bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008 — FastAPI's idiom
                           header_key: str | None = Security(_api_key_header)) -> None:
        request.state.grant = None
        if not enabled:
            return
        presented = bearer.credentials if bearer else header_key
        grant = _lookup(keys, presented) if presented else None
        if grant is None:
            reason = "missing API key" if not presented else "unknown API key"
            raise HTTPException(401, f"{reason}: send `Authorization: Bearer <key>` or `X-API-Key: <key>` (keys are set in RAGLOOP_API_KEYS)",
                                headers={"WWW-Authenticate": "Bearer"})
        request.state.grant = grant
        await _scope_path_resources(ctx, request, grant.tenant)

    return authenticate


def _lookup(keys: dict[str, KeyGrant], presented: str) -> KeyGrant | None:
    # Compare against every key in constant time, so response timing does not leak key prefixes.
    found = None
    for key, grant in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = grant
    return found


async def _scope_path_resources(ctx: GatewayContext, request: Request, tenant: str) -> None:
    """Another tenant's task or document, or one whose access list names none of the key's
    principals (the rule search applies to its chunks), is indistinguishable from a missing one:
    404 before the route runs, so it can be neither read, nor waited on, nor deleted."""
    params = request.path_params
    if "task_id" in params:
        task = await asyncio.to_thread(ctx.stores.tasks.get_task, params["task_id"])
        if task is not None and not owns_task(grant_of(request), task):
            raise HTTPException(404, f"unknown task_id {params['task_id']!r}")
    if "document_id" in params:
        document_id = params["document_id"]
        if await asyncio.to_thread(ctx.stores.documents.hidden_from, document_id, tenant, principals_of(request, [])):
            raise HTTPException(404, f"unknown document_id {document_id!r}")
