"""/healthz and /metrics of a `ragloop worker ROLE` process, which has no HTTP API of its own.

Kubernetes needs something to probe (a worker whose event loop is stuck stops answering, and is
restarted) and Prometheus something to scrape (consumed/failed counters, handler seconds). The
listener answers only once the runtime has started, i.e. reached the broker and bound its
consumers, so readiness means "consuming".
"""

from __future__ import annotations

import asyncio

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def health_app(roles: list[str]) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "roles": roles})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])


async def serve_health(roles: list[str], port: int) -> None:
    """Serve until cancelled (the worker stopping)."""
    server = uvicorn.Server(uvicorn.Config(health_app(roles), host="0.0.0.0", port=port, log_level="warning",
                                           lifespan="off"))  # all interfaces: a pod's probe comes from outside
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        raise
