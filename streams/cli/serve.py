"""`ragloop up` and `ragloop worker ROLE`: run the loop, or one role of it, until Ctrl-C."""

from __future__ import annotations

import asyncio
from typing import Annotated, NoReturn

import typer

from schemas.settings import get_settings
from streams.cli.options import console
from streams.cli.runtime import run_with
from streams.cli.startup import missing_secrets, unreachable
from streams.runtime import ROLES, Runtime


def up(host: Annotated[str | None, typer.Option(help="Bind address [RAGLOOP_API_HOST].")] = None,
       port: Annotated[int | None, typer.Option(help="Port [RAGLOOP_API_PORT].")] = None) -> None:
    """Run the whole loop in one process (every role + the HTTP API). Embedded by default: no servers needed.

    Then: `curl -X POST localhost:8000/v1/documents -d '{"title":"…","text":"…"}' -H 'content-type: application/json'`
    """
    _serve(list(ROLES), host, port)


def worker(role: Annotated[str, typer.Argument(help=f"One of: {', '.join([*ROLES, 'gateway'])}.")]) -> None:
    """Run one role against the configured broker (cluster mode: start as many as you like)."""
    if role != "gateway" and role not in ROLES:
        _unknown_role(role)
    settings = get_settings()
    if missing := missing_secrets(settings, role):
        _refuse(f"{', '.join(missing)} is not set: the {role} would refuse every request (API-key auth is on "
                f"with RAGLOOP_BROKER_URL={settings.broker.url.split('://')[0]}://; set it, or RAGLOOP_AUTH=off)")
    if role == "gateway":
        _serve([], None, None)
        return

    async def forever(runtime: Runtime) -> None:
        port = settings.workers.health_port
        console.print(f"[green]worker {role}[/] {runtime.describe()}"
                      f"{f'; /healthz and /metrics on :{port}' if port else ''}; Ctrl-C to stop")
        if port:
            from streams.health_server import serve_health

            await serve_health([role], port)
        await asyncio.Event().wait()

    try:
        run_with(settings, [role], forever)
    except KeyboardInterrupt:
        pass
    except Exception as error:
        if (line := unreachable(settings, error)) is None:
            raise
        _refuse(line)


def _refuse(line: str) -> NoReturn:
    """One line on stderr and a non-zero exit: a misconfigured pod's log says why, without a trace."""
    console.print(f"[red]error:[/] {line}", highlight=False)
    raise typer.Exit(1)


def _unknown_role(role: str) -> NoReturn:
    raise typer.BadParameter(f"unknown role {role!r}; choose from {', '.join([*ROLES, 'gateway'])}")


def _serve(roles: list[str], host: str | None, port: int | None) -> None:
    import uvicorn

    from streams.gateway.app import create_app

    settings = get_settings()
    runtime = Runtime(settings, roles)
    app = create_app(runtime)  # binds the gateway's own listeners, so describe() names them too
    host, port = host or settings.gateway.host, port or settings.gateway.port
    console.print(f"[green]ragloop[/] roles={[*roles, 'gateway']} {runtime.describe()}")
    console.print(f"[green]serving[/] http://{host}:{port} (API docs http://{host}:{port}/docs, metrics /metrics); Ctrl-C to stop")
    uvicorn.run(app, host=host, port=port, log_level="warning")
