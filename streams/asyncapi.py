"""AsyncAPI 3.0 description of every topic, generated from the topic registry, the event models and
the publish and subscribe calls in the code (`streams/flows.py`), so the document can never drift
from the contracts the workers validate nor from who really sends and reads each topic."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from schemas.events import DeadLetter
from streams.flows import flows
from streams.topics import TOPICS, Topic, planned_topics

KAFKA_BINDING_VERSION = "0.5.0"


def asyncapi_document(version: str = "0.1.0") -> dict[str, Any]:
    models = {topic.event for topic in TOPICS.values()} | {DeadLetter}
    _, definitions = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                        ref_template="#/components/schemas/{model}")
    channels: dict[str, Any] = {}
    plan = {t.name: t for t in planned_topics()}
    keys = {t.event: t.key for t in TOPICS.values()}
    operations: dict[str, Any] = {}
    for name, topic in TOPICS.items():
        channel_id = name.replace(".", "_")
        flow = flows()[name]
        producers, consumers = ", ".join(flow.producers) or "no component", ", ".join(flow.consumers) or "no component"
        channels[channel_id] = {
            "address": name,
            "description": f"{topic.description} Produced by: {producers}. Consumed by: {consumers}.",
            "messages": {topic.event.__name__: {"$ref": f"#/components/messages/{topic.event.__name__}"}},
            "bindings": _kafka_binding(plan[name]),
        }
        channels[channel_id + "_dlq"] = {
            "address": topic.dlq,
            "description": f"Dead letters of {name}: schema-invalid messages and exhausted retries, with the reason.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            "bindings": _kafka_binding(plan[topic.dlq]),
        }
        operations[f"receive_{channel_id}"] = {"action": "receive", "channel": {"$ref": f"#/channels/{channel_id}"},
                                               "summary": f"{consumers} consume {name}"}
    messages = {m.__name__: {"name": m.__name__, "contentType": "application/json", "title": m.__name__,
                             "summary": (m.__doc__ or m.__name__).strip().splitlines()[0],
                             "payload": {"$ref": f"#/components/schemas/{m.__name__}"},
                             **({"bindings": {"kafka": {"key": {"type": "string", "description": f"The {keys[m]}."},
                                                        "bindingVersion": KAFKA_BINDING_VERSION}}} if m in keys else {})}
                for m in sorted(models, key=lambda m: m.__name__)}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "ragloop events", "version": version,
                 "description": "Every topic of the ragloop loop. Messages are JSON; the Kafka key is the partition key "
                                "named in each event (document id, conversation id, task id or model family) and in each message's Kafka binding. "
                                "Producers and "
                                "consumers are read from the code; besides them, `ragloop publish` sends to any topic and "
                                "`ragloop dlq replay` back to a dead letter's topic."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }


def _kafka_binding(topic: Topic) -> dict[str, Any]:
    """The topic plan's layout of one channel, as AsyncAPI's Kafka channel binding states it."""
    return {"kafka": {"topic": topic.name, "partitions": topic.partitions, "replicas": topic.replication,
                      "topicConfiguration": {"cleanup.policy": [topic.config()["cleanup.policy"]],
                                             "retention.ms": topic.retention_ms},
                      "bindingVersion": KAFKA_BINDING_VERSION}}
