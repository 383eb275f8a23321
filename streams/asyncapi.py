"""AsyncAPI 3.0 description of every topic, generated from the topic registry and event models,
so the document can never drift from the contracts the workers actually validate."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from schemas.events import DeadLetter
from streams.topics import TOPICS

# Which role publishes and which consumes each topic (ARCHITECTURE.md), for the operation list.
FLOWS: dict[str, tuple[str, str]] = {
    "docs.ingest": ("gateway, CLI, any producer", "ingest"),
    "docs.ingest.large": ("ingest (documents above RAGLOOP_INGEST_LARGE_BYTES)", "ingest"),
    "docs.delete": ("gateway, CLI", "ingest"),
    "docs.progress": ("ingest", "anyone"),
    "docs.indexed": ("ingest", "anyone"),
    "chat.requests": ("gateway, webhooks, any producer", "agent"),
    "chat.requests.high": ("gateway, webhooks, any producer", "agent"),
    "chat.tokens": ("agent", "gateway (SSE)"),
    "chat.responses": ("agent", "eval, callbacks"),
    "images.generate": ("agent", "image worker"),
    "eval.results": ("eval", "anyone"),
    "feedback.events": ("gateway", "feedback, eval"),
    "train.requests": ("feedback, CLI", "trainer"),
    "model.updated": ("trainer", "agent, eval"),
}


def asyncapi_document(version: str = "0.1.0") -> dict[str, Any]:
    models = {topic.event for topic in TOPICS.values()} | {DeadLetter}
    _, definitions = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                        ref_template="#/components/schemas/{model}")
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, topic in TOPICS.items():
        channel_id = name.replace(".", "_")
        producers, consumers = FLOWS.get(name, ("", ""))
        channels[channel_id] = {
            "address": name,
            "description": f"{topic.description} Produced by: {producers}. Consumed by: {consumers}.",
            "messages": {topic.event.__name__: {"$ref": f"#/components/messages/{topic.event.__name__}"}},
        }
        channels[channel_id + "_dlq"] = {
            "address": topic.dlq,
            "description": f"Dead letters of {name}: schema-invalid messages and exhausted retries, with the reason.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
        operations[f"receive_{channel_id}"] = {"action": "receive", "channel": {"$ref": f"#/channels/{channel_id}"},
                                               "summary": f"{consumers} consume {name}"}
    messages = {m.__name__: {"name": m.__name__, "contentType": "application/json", "title": m.__name__,
                             "summary": (m.__doc__ or m.__name__).strip().splitlines()[0],
                             "payload": {"$ref": f"#/components/schemas/{m.__name__}"}} for m in sorted(models, key=lambda m: m.__name__)}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "ragloop events", "version": version,
                 "description": "Every topic of the ragloop loop. Messages are JSON; the Kafka key is the partition key "
                                "named in each event (document id, conversation id, task id or model family)."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }
