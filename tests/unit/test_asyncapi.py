"""The AsyncAPI document covers every topic and its DLQ, every reference in it resolves, and its producers and
consumers are those the code really has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.asyncapi import asyncapi_document
from streams.flows import FlowError, flows, scan
from streams.runtime import ROLES, Runtime
from streams.topics import all_topic_names


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_topic_and_dlq_is_a_channel() -> None:
    document = asyncapi_document()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(all_topic_names())
    assert document["asyncapi"].startswith("3.")


def _resolve(document: dict, ref: str) -> object:
    """The node a local `#/a/b` reference names, or None where the path leads nowhere."""
    node: object = document
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


# What a reference into each section must find there, so a reference cannot land on the wrong kind of node.
EXPECTED_KEY = {"#/channels": "address", "#/components/messages": "payload", "#/components/schemas": "type"}


def test_every_reference_resolves_to_a_node_of_its_kind() -> None:
    document = asyncapi_document()
    refs = _refs(document)
    assert {ref.rsplit("/", 1)[0] for ref in refs} == set(EXPECTED_KEY)  # operations, channels and messages all link
    wrong = [ref for ref in refs if EXPECTED_KEY[ref.rsplit("/", 1)[0]] not in (_resolve(document, ref) or {})]
    assert wrong == []


def test_checked_in_document_is_current() -> None:
    with open(Path(__file__).parents[2] / "docs" / "asyncapi.json") as handle:
        assert json.load(handle) == json.loads(json.dumps(asyncapi_document()))  # regenerate: ragloop topics asyncapi --out docs/asyncapi.json


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_consumers_read_from_the_code_are_those_the_role_binds(settings, role: str) -> None:
    runtime = Runtime(settings, roles=[role])
    bound = sorted(set(runtime.consumed))
    runtime.services.close()
    assert sorted(topic for topic, flow in flows().items() if f"{role} worker" in flow.consumers) == bound


def test_the_document_names_who_really_publishes_and_consumes() -> None:
    descriptions = {c["address"]: c["description"] for c in asyncapi_document()["channels"].values()}
    assert descriptions["model.updated"].endswith("Produced by: CLI, gateway, eval worker, trainer worker. Consumed by: agent worker.")
    assert descriptions["train.requests"].endswith("Produced by: feedback worker. Consumed by: trainer worker.")
    assert descriptions["images.generate"].endswith("Produced by: streams.image_jobs. Consumed by: images worker.")


def test_a_publish_whose_event_cannot_be_read_is_an_error_naming_the_line(tmp_path: Path) -> None:
    source = tmp_path / "worker.py"
    source.write_text("async def handle(publisher, payload):\n    await publisher.publish(payload)\n")
    with pytest.raises(FlowError, match=r"worker.py:2: cannot tell the event published from `payload`"):
        scan(source)


def test_a_publish_is_read_from_its_constructor_annotation_or_lane(tmp_path: Path) -> None:
    source = tmp_path / "worker.py"
    source.write_text(
        "LANE = TOPICS['docs.ingest.large']\n"
        "async def handle(publisher, event: DocumentIngest, request: ChatRequest):\n"
        "    await publisher.publish(EvalResult(task_id='t', model_version='m', metrics={}))\n"
        "    await publisher.publish(event)\n"
        "    await publisher.publish(event, topic=LANE.name)\n"
        "    await publisher.publish(request)\n"
        "    consumer = EventConsumer(TOPICS['feedback.events'], 'group', handle)\n")
    assert scan(source) == (["eval.results", "docs.ingest", "docs.ingest.large", "chat.requests", "chat.requests.high"],
                            ["feedback.events"])
