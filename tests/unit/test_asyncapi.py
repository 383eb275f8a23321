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


def test_every_reference_resolves() -> None:
    document = asyncapi_document()
    for ref in _refs(document):
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]


def test_checked_in_document_is_current() -> None:
    with open(Path(__file__).parents[2] / "docs" / "asyncapi.json") as handle:
        assert json.load(handle) == json.loads(json.dumps(asyncapi_document()))  # regenerate: ragloop topics asyncapi --out docs/asyncapi.json
