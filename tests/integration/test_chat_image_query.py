"""An image attached to a chat question is a query: the gateway checks it and puts it on the event, the
agent's router picks image search for it, and the answer cites the tenant's most similar image by URL.
Another tenant asking with the same image finds nothing of the first tenant's."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from indexing.images.store import image_id
from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests.images_support import image_bytes

RED, BLUE = (200, 30, 30), (30, 30, 200)


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def question(text: str, *images: str) -> dict[str, object]:
    parts: list[dict[str, object]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": "user", "content": parts}


@pytest.fixture
def client(clip_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(Runtime(clip_settings.override(max_new_tokens=8), ["ingest", "agent"]))) as test_client:
        yield test_client


@pytest.mark.slow  # the agent role loads SmolLM2
def test_an_attached_image_finds_the_tenants_similar_image_and_no_other_tenants(client: TestClient) -> None:
    red, blue = image_bytes("PNG", color=RED), image_bytes("PNG", color=BLUE)
    for document_id, data in (("red-square", red), ("blue-square", blue)):
        posted = client.post("/v1/documents", json={"document_id": document_id, "tenant": "acme", "content_b64": base64.b64encode(data).decode(),
                                                    "filename": f"{document_id}.png", "metadata": {"caption": f"a {document_id}"}})
        assert posted.status_code == 202, posted.text
        assert client.get(f"/v1/documents/{document_id}", params={"wait": "true", "timeout": 120}).json()["status"] == "indexed"

    asked = client.post("/v1/chat", params={"wait": "true", "timeout": 300},
                        json={"tenant": "acme", "messages": [question("which of our pictures is like this?", data_url(red))]})
    assert asked.status_code == 200, asked.text
    citations = asked.json()["result"]["citations"]
    assert citations and citations[0]["image_url"] == f"/v1/images/{image_id('acme', red)}", citations

    other = client.post("/v1/chat", params={"wait": "true", "timeout": 300},
                        json={"tenant": "other", "messages": [question("which of our pictures is like this?", data_url(red))]})
    assert other.status_code == 200, other.text
    assert not any(citation.get("image_url") for citation in other.json()["result"]["citations"])


def test_more_images_than_a_question_may_carry_are_refused_with_the_limit(clip_settings: Settings) -> None:
    with TestClient(create_app(Runtime(clip_settings, []))) as client:
        five = [data_url(image_bytes("PNG", color=RED))] * 5
        refused = client.post("/v1/chat", json={"messages": [question("like these?", *five)]})
    assert refused.status_code == 422 and "at most 4" in refused.text, refused.text
