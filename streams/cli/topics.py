"""`ragloop topics`: create the Kafka topics, list them, print their AsyncAPI document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from schemas.settings import get_settings
from streams.cli.options import console, listing
from streams.topics import TOPICS, all_topic_names

topics_app = typer.Typer(help="Manage Kafka topics (every topic and its .dlq).", no_args_is_help=True)


@topics_app.command("create")
def topics_create(partitions: Annotated[int | None, typer.Option(help="Partitions per topic [RAGLOOP_KAFKA_PARTITIONS].")] = None) -> None:
    """Create every topic and its .dlq on the configured Kafka cluster (existing ones are kept)."""
    settings = get_settings()
    if settings.broker.is_embedded:
        raise typer.BadParameter("RAGLOOP_BROKER_URL is memory:// — topics exist in-process; set kafka://host:port")
    from streams.brokers.kafka import create_topics

    names = [settings.broker.topic_prefix + name for name in all_topic_names()]
    created = create_topics(settings.broker.kafka_bootstrap, names, partitions=partitions or settings.broker.kafka_partitions)
    console.print(f"created {len(created)} topic(s); {len(all_topic_names()) - len(created)} already existed")


@topics_app.command("asyncapi")
def topics_asyncapi(out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None) -> None:
    """Print the AsyncAPI 3.0 document of every topic and event (also served at /asyncapi.json)."""
    from streams.asyncapi import asyncapi_document

    text = json.dumps(asyncapi_document(), indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n")
        console.print(f"wrote {out}")


@topics_app.command("list")
def topics_list() -> None:
    """Show every topic, the event it carries and what it is for."""
    for topic in TOPICS.values():
        listing.print(f"[bold]{topic.name}[/] ({topic.event.__name__}) — {topic.description}  dlq: {topic.dlq}")
