"""`ragloop topics`: create the Kafka topics, list them, print their AsyncAPI document."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from schemas.settings import get_settings
from streams.cli.options import console, listing
from streams.topics import TOPICS, planned_topics

topics_app = typer.Typer(help="Manage Kafka topics (every topic and its .dlq).", no_args_is_help=True)


@topics_app.command("create")
def topics_create(
        bootstrap: Annotated[str | None, typer.Option(help="HOST:PORT[,HOST:PORT] of the cluster; default: RAGLOOP_BROKER_URL.")] = None,
        partitions: Annotated[int | None, typer.Option(min=1, help="Partitions of every topic, instead of the plan's (`topics list`).")] = None,
        replication: Annotated[int | None, typer.Option(min=1, help="Replicas of every topic, instead of the plan's 3 (1 on a one-broker "
                                                                    "cluster).")] = None,
        prefix: Annotated[str | None, typer.Option(help="Topic name prefix; default: RAGLOOP_TOPIC_PREFIX.")] = None) -> None:
    """Create every topic and its .dlq as the topic plan lays them out, for clusters where auto-create
    is off. Existing topics are reported and left alone; a plan the cluster cannot hold fails whole."""
    from kafka.errors import KafkaError

    from streams.brokers.topic_plan import TopicPlanError, apply_plan

    settings = get_settings()
    if bootstrap is None and settings.broker.is_embedded:
        raise typer.BadParameter("RAGLOOP_BROKER_URL is memory:// — topics exist in-process; set kafka://host:port or pass --bootstrap")
    servers = bootstrap.removeprefix("kafka://").split(",") if bootstrap else settings.broker.kafka_bootstrap
    topics = [replace(t, partitions=partitions or t.partitions, replication=replication or t.replication) for t in planned_topics()]
    try:
        result = apply_plan(servers, topics, prefix=settings.broker.topic_prefix if prefix is None else prefix)
    except TopicPlanError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    except KafkaError as error:  # NoBrokersAvailable and friends: one line, not a trace
        console.print(f"[red]error:[/] cannot reach Kafka at {','.join(servers)}: {type(error).__name__}")
        raise typer.Exit(1) from None
    for name, have in result.existing.items():
        console.print(f"exists: {name} ({have} partition(s))")
    console.print(f"created {len(result.created)} topic(s); {len(result.existing)} already existed")


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
        listing.print(f"[bold]{topic.name}[/] ({topic.event.__name__}) — {topic.description}  key: {topic.key}; "
                      f"partitions: {topic.partitions}; retention: {topic.retention_ms // 3_600_000} h; dlq: {topic.dlq}")
