"""The HTTP contract without workers: what is accepted, what is refused, and how refusals read."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    runtime = Runtime(settings, roles=[])  # accept and publish only: nothing consumes, so tasks stay queued
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def test_document_is_accepted_and_queued(client: TestClient) -> None:
    reply = client.post("/v1/documents", json={"title": "T", "text": "hello", "id": "doc-1"})
    assert reply.status_code == 202 and reply.json() == {"document_id": "doc-1", "status": "queued"}
    assert client.get("/v1/documents/doc-1").json()["status"] == "queued"


def test_document_without_a_body_is_422_saying_what_to_send(client: TestClient) -> None:
    reply = client.post("/v1/documents", json={"title": "T"})
    assert reply.status_code == 422
    assert "give exactly one of text, url or content_b64" in reply.json()["error"]


def test_document_field_errors_name_the_field(client: TestClient) -> None:
    reply = client.post("/v1/documents", json={"text": "x", "tenant": "bad tenant!"})
    assert reply.status_code == 422 and reply.json()["error"].startswith("tenant:")


def test_url_to_a_private_address_is_refused_up_front(client: TestClient) -> None:
    reply = client.post("/v1/documents", json={"url": "http://127.0.0.1:9/secret"})
    assert reply.status_code == 422 and reply.json()["detail"].startswith("url:")


def test_unsupported_upload_is_415(client: TestClient) -> None:
    blob = base64.b64encode(b"\x00\x01binary").decode()
    reply = client.post("/v1/documents", json={"content_b64": blob, "filename": "tool.exe"})
    assert reply.status_code == 415 and "not supported" in reply.json()["detail"]


def test_oversized_upload_is_413(settings: Settings) -> None:
    with TestClient(create_app(Runtime(settings.model_copy(update={"fetch_max_bytes": 10}), roles=[]))) as small:
        reply = small.post("/v1/documents", json={"content_b64": base64.b64encode(b"x" * 11).decode(), "filename": "a.txt"})
    assert reply.status_code == 413 and "limit is 10" in reply.json()["detail"]


def test_delete_unknown_document_is_404(client: TestClient) -> None:
    assert client.delete("/v1/documents/nope").status_code == 404


def test_unknown_document_is_404(client: TestClient) -> None:
    reply = client.get("/v1/documents/nope")
    assert reply.status_code == 404 and "nope" in reply.json()["detail"]


def test_chat_is_accepted_with_a_task_id(client: TestClient) -> None:
    reply = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 202
    task = client.get(f"/v1/tasks/{reply.json()['task_id']}").json()
    assert task["status"] == "queued" and task["result"] is None


def test_chat_with_a_bad_role_is_422_naming_the_field(client: TestClient) -> None:
    reply = client.post("/v1/chat", json={"messages": [{"role": "robot", "content": "hi"}]})
    assert reply.status_code == 422
    assert "messages.0.role" in reply.json()["error"]


def test_chat_must_end_with_a_user_message(client: TestClient) -> None:
    reply = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    assert reply.status_code == 422 and "last message" in reply.json()["error"]


def test_unknown_model_version_is_404_listing_the_available_ones(client: TestClient) -> None:
    reply = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "q"}], "model_version": "v9"})
    assert reply.status_code == 404
    assert "smollm2-135m-instruct@base" in reply.json()["detail"]


def test_unknown_task_is_404(client: TestClient) -> None:
    assert client.get("/v1/tasks/missing").status_code == 404


def test_feedback_for_unknown_task_is_404(client: TestClient) -> None:
    reply = client.post("/v1/feedback", json={"task_id": "missing", "rating": "down", "correction": "x"})
    assert reply.status_code == 404


def test_feedback_rating_must_be_up_or_down(client: TestClient) -> None:
    task_id = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "q"}]}).json()["task_id"]
    reply = client.post("/v1/feedback", json={"task_id": task_id, "rating": "great"})
    assert reply.status_code == 422 and reply.json()["error"].startswith("rating:")
    assert client.post("/v1/feedback", json={"task_id": task_id, "rating": "up"}).status_code == 202


def test_models_lists_exactly_one_active_version(client: TestClient) -> None:
    models = client.get("/v1/models").json()["models"]
    assert [m["state"] for m in models].count("active") == 1
    assert models[0]["version"] == "smollm2-135m-instruct@base"


def test_health_metrics_and_openapi_are_served(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/documents", json={"text": "x"})
    assert 'ragloop_events_published_total{topic="docs.ingest"}' in client.get("/metrics").text
    assert "/v1/chat" in client.get("/openapi.json").json()["paths"]
