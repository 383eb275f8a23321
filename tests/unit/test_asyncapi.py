"""The AsyncAPI document covers every topic and its DLQ, and every reference in it resolves."""

from __future__ import annotations

import json
from pathlib import Path

from streams.asyncapi import asyncapi_document
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
