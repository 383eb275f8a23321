"""`ragloop soak`: run the whole loop under a mixed load for N minutes and print the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from schemas.settings import get_settings
from streams.cli.options import console
from streams.soak.load import Mix
from streams.soak.run import Mode, Plan, soak as run_soak

EX_NOT_CLEAN = 1


def soak(minutes: Annotated[float, typer.Option(min=0.05, help="How long to send the load.")] = 1.0,
         mode: Annotated[Mode, typer.Option(help="embedded: one `ragloop up` process (memory broker, embedded index, SQLite under "
                                                 "RAGLOOP_HOME). cluster: the gateway and each worker role (ingest, agent, eval, "
                                                 "feedback) as separate processes on the configured RAGLOOP_BROKER_URL (kafka://), "
                                                 "RAGLOOP_SEARCH_URL (http://) and RAGLOOP_DATABASE_URL (postgresql://).")] = "embedded",
         concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
         drain: Annotated[float, typer.Option(min=1, help="After the load: seconds without a new effect before the rest counts "
                                                          "as lost or stuck (4x at most in all).")] = 120,
         chat_share: Annotated[float, typer.Option(min=0, max=1, help="Share of chats in the mix (each generates a 4-token answer); "
                                                                      "the rest is documents (~55%), deletes (~8%) and feedback.")] = 0.04,
         seed: Annotated[int, typer.Option(help="Seed of the mix, to replay a run.")] = 0,
         logs: Annotated[Path, typer.Option(help="Where each process's log goes (one folder per run).")] = Path("soak-logs"),
         json_output: Annotated[bool, typer.Option("--json", help="Print the ledger as JSON.")] = False) -> None:
    """Run the whole loop under mixed load (document ingests and deletes, chats, feedback) and print the ledger.

    Every request the API accepts is checked for its effect, exactly once: a document indexed (searchable, no duplicated chunks) or deleted; a chat finished with one answer and its eval row; one feedback row. The ledger counts accepted, effects, lost (no effect by the drain deadline), duplicated and stuck (still queued or running), plus 503s and server errors. Exits 1 unless it shows 0 lost, 0 duplicated, 0 stuck.

    Each run gets its own topics, index, data folder and API key. Cluster mode needs the services running (deploy/local/services.sh start), then: RAGLOOP_BROKER_URL=kafka://127.0.0.1:9092 RAGLOOP_SEARCH_URL=http://127.0.0.1:9200 RAGLOOP_DATABASE_URL=postgresql://ragloop:ragloop@127.0.0.1:5432/ragloop ragloop soak --mode cluster --minutes 10
    """  # noqa: E501 — one line per paragraph, so --help wraps it to the terminal
    settings = get_settings()
    if mode == "embedded":
        settings = settings.override(broker_url="memory://", search_url="embedded://", database_url=None)
    elif settings.broker.is_embedded or settings.search.url.startswith("embedded") or not (settings.database_url or "").startswith("postgresql"):
        raise typer.BadParameter("cluster mode needs RAGLOOP_BROKER_URL=kafka://…, RAGLOOP_SEARCH_URL=http://… (OpenSearch) and "
                                 "RAGLOOP_DATABASE_URL=postgresql://…; start them with deploy/local/services.sh start", param_hint="--mode")
    rest = 1 - chat_share
    mix = Mix(chat=chat_share, document=0.55 * rest / 0.96, delete=0.08 * rest / 0.96, feedback=0.33 * rest / 0.96)
    plan = Plan(mode=mode, seconds=minutes * 60, concurrency=concurrency, drain_s=drain, seed=seed, mix=mix)
    console.print(f"[green]soak[/] {mode} mode for {minutes:g} min, {concurrency} in flight; logs under {logs}/")
    ledger = asyncio.run(run_soak(settings, plan, logs=logs))
    print(ledger.model_dump_json(indent=2) if json_output else ledger.render())
    if not ledger.clean:
        raise typer.Exit(EX_NOT_CLEAN)
