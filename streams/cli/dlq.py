"""`ragloop dlq`: find the messages workers gave up on, read why, and replay them once fixed."""

from __future__ import annotations

import asyncio
import getpass
import json
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from schemas.database import Database
from schemas.events import utcnow
from schemas.settings import get_settings
from schemas.tables import DeadLetterRecord
from streams.brokers import EmbeddedBroker
from streams.cli.runtime import in_process, run_with
from streams.dead_letters import DeadLetterStore, parse_since, replay_message, revive
from streams.runtime import ROLES, Runtime
from streams.topics import Topic, resolve

dlq_app = typer.Typer(help="Dead letters: messages a worker gave up on (schema-invalid, or failing after every retry), "
                           "with the reason. List them, read one, replay them to their topic after fixing the cause.",
                      no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _since(text: str | None) -> datetime | None:
    try:
        return parse_since(text) if text else None
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _topic(name: str) -> Topic:
    try:
        return resolve(name)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _letters() -> DeadLetterStore:
    return DeadLetterStore(Database.from_settings(get_settings()))


@dlq_app.command("list")
def dlq_list(topic: Annotated[str | None, typer.Argument(help="Only this topic, e.g. chat.requests (default: every topic).")] = None,
             since: Annotated[str | None, typer.Option(help="Only letters newer than this: 30m, 2h, 1d or an ISO time.")] = None,
             tenant: Annotated[str | None, typer.Option(help="Only this tenant's letters.")] = None,
             limit: Annotated[int, typer.Option(help="Show at most this many (newest first).")] = 50,
             json_output: Annotated[bool, typer.Option("--json", help="Print the letters as JSON lines.")] = False) -> None:
    """List dead letters, newest first: id, topic, when, who gave up, attempts and the reason."""
    rows = _letters().list(topic=_topic(topic).name if topic else None, since=_since(since),
                           tenant=tenant, limit=limit)
    if json_output:
        for row in rows:
            print(row.model_dump_json(exclude={"payload"}))
        return
    if not rows:
        console.print("no dead letters" + (f" on {topic}" if topic else "") + (f" since {since}" if since else ""))
        return
    table = Table("id", "topic", "failed at (UTC)", "consumer", "tries", "reason", "replayed")
    for row in rows:
        table.add_row(row.id, row.topic, f"{row.failed_at:%Y-%m-%d %H:%M:%S}", row.consumer, str(row.attempts), row.reason[:120],
                      f"{row.replays}× by {row.replayed_by}" if row.replays else "")
    Console(soft_wrap=True).print(table)
    console.print("read one: ragloop dlq show ID · replay: ragloop dlq replay TOPIC --ids ID (or --all)")


@dlq_app.command("show")
def dlq_show(letter_id: Annotated[str, typer.Argument(metavar="ID", help="A dead letter's id (from `ragloop dlq list`).")]) -> None:
    """Print one dead letter as JSON, with the original payload and the full reason."""
    row = _letters().get(letter_id)
    if row is None:
        raise typer.BadParameter(f"no dead letter {letter_id!r}; `ragloop dlq list` shows the ids")
    print(row.model_dump_json(indent=2))


@dlq_app.command("replay")
def dlq_replay(topic: Annotated[str, typer.Argument(help="The topic the letters came from, e.g. docs.ingest.")],
               ids: Annotated[list[str] | None, typer.Option("--ids", help="Letter ids to replay (repeatable, or comma-separated).")] = None,
               replay_all: Annotated[bool, typer.Option("--all", help="Replay every letter of the topic that was never replayed.")] = False,
               by: Annotated[str, typer.Option(help="Who is replaying, recorded on each letter.")] = getpass.getuser()) -> None:
    """Publish dead letters again to their topic, with the original key, once the cause is fixed.

    Each gets a fresh event_id (the old one is recorded as handled), the chat task or document it
    concerns goes back to `queued`, and the letter records who replayed it and when. A letter that
    fails again comes back as a new dead letter.
    """
    target = _topic(topic)
    wanted = [i for entry in ids or [] for i in entry.split(",") if i]
    if bool(wanted) == replay_all:
        raise typer.BadParameter("say which: --ids ID[,ID…] or --all")
    settings = get_settings()
    letters = _letters()
    if replay_all:
        rows = [r for r in letters.list(topic=target.name, limit=100_000) if r.replays == 0]
    else:
        rows = letters.list(ids=wanted, limit=len(wanted))
        missing = sorted(set(wanted) - {r.id for r in rows})
        if missing:
            raise typer.BadParameter(f"no dead letter(s) {', '.join(missing)}; `ragloop dlq list {target.name}` shows the ids")
        elsewhere = [r.id for r in rows if r.topic != target.name]
        if elsewhere:
            raise typer.BadParameter(f"{', '.join(elsewhere)} came from another topic than {target.name}")

    async def send(runtime: Runtime) -> list[DeadLetterRecord]:
        started = utcnow()
        for row in sorted(rows, key=lambda r: r.failed_at):  # oldest first: per-key order as it was
            await asyncio.to_thread(revive, runtime.stores.db, row)
            await runtime.broker.publish(row.topic, replay_message(row), key=row.key)
            await asyncio.to_thread(letters.mark_replayed, row.id, by)
        if not isinstance(runtime.broker, EmbeddedBroker):
            return []
        await runtime.broker.join()
        return letters.list(topic=target.name, since=started)

    again = run_with(settings, in_process(settings, list(ROLES)), send)
    console.print(f"replayed {len(rows)} dead letter(s) to {target.name} as {by}")
    for row in again:
        console.print(f"[red]dead-lettered again[/] {row.id}: {row.reason}")
    print(json.dumps({"replayed": [r.id for r in rows], "failed_again": [r.id for r in again]}))
