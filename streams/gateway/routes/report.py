"""The learning-loop report as a web page, scoped to the caller's tenant."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from evaluation.report import build_report
from streams.gateway.auth import grant_of
from streams.gateway.context import GatewayContext


def router(ctx: GatewayContext) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/report", response_class=HTMLResponse, tags=["models"],
             responses={200: {"content": {"text/html": {}}, "description": "One self-contained HTML page (inline SVG and CSS, no scripts)."}})
    async def report(request: Request,
                     tenant: Annotated[str | None, Query(max_length=200, description="Without auth: only this tenant's rows (default: every "
                                                                                    "tenant). With auth on the API key's tenant is used.")] = None,
                     ) -> HTMLResponse:
        """Answer quality per model version with canary periods shaded, feedback volume and ratings, training runs with their
        gate numbers, promotions and rollbacks. With auth on, only the key's tenant's numbers (and the shared line's decisions,
        without their numbers): a tenant never sees another's."""
        grant = grant_of(request)
        scope = grant.tenant if grant else tenant
        html = await asyncio.to_thread(build_report, ctx.stores.db, tenant=scope)  # plotting takes a moment: off the event loop
        return HTMLResponse(html)

    return api
