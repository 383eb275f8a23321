"""The HTTP contract without workers: what is accepted, what is refused, and how refusals read."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from schemas.settings import Settings
from streams.asyncapi import asyncapi_document
from streams.gateway.app import create_app
from streams.runtime import Runtime
from streams.topics import all_topic_names

# The README's "HTTP API" table, method and path.
README_ROUTES = {("post", "/v1/documents"), ("get", "/v1/documents/{document_id}"), ("delete", "/v1/documents/{document_id}"),
                 ("post", "/v1/chat"), ("get", "/v1/tasks/{task_id}"), ("get", "/v1/tasks/{task_id}/events"),
                 ("delete", "/v1/tasks/{task_id}"), ("post", "/v1/chat/completions"), ("post", "/v1/feedback"), ("get", "/v1/models"),
                 ("post", "/v1/webhooks/generic"), ("post", "/v1/webhooks/slack"), ("get", "/healthz"), ("get", "/metrics"),
                 ("get", "/asyncapi.json"), ("get", "/v1/dead-letters"), ("post", "/v1/models/{version}/promote"),
                 ("post", "/v1/models/{version}/rollback"), ("get", "/v1/models/decisions"), ("get", "/v1/report"),
                 ("get", "/v1/images/{image_id}"), ("get", "/v1/images/{image_id}/thumbnail"), ("post", "/v1/images/search")}


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = Runtime(settings, roles=[])  # accept and publish only: nothing consumes, so tasks stay queued
    with TestClient(create_app(runtime)) as test_client:
        yield test_client, runtime


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with serving(settings) as (test_client, _):
        yield test_client


def from_env(settings: Settings, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings as a process reads them with these `RAGLOOP_*` variables set: the names the README documents."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(home=settings.home, broker={"url": settings.broker.url}, search={"url": settings.search.url})


def messages(system_chars: int, user_chars: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "s" * system_chars}, {"role": "user", "content": "u" * user_chars}]


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
    with TestClient(create_app(Runtime(settings.override(fetch_max_bytes=10), roles=[]))) as small:
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


def test_health_and_metrics_are_served(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/documents", json={"text": "x"})
    assert 'ragloop_events_published_total{topic="docs.ingest"}' in client.get("/metrics").text


# --- limits: refused before anything is queued -----------------------------------------------------

def test_a_prompt_over_max_prompt_chars_is_413_saying_what_to_change(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message counts towards RAGLOOP_MAX_PROMPT_CHARS; the refusal gives the size, the limit and the setting."""
    with serving(from_env(settings, monkeypatch, RAGLOOP_MAX_PROMPT_CHARS="40")) as (client, runtime):
        refused = client.post("/v1/chat", json={"messages": messages(20, 21)})
        assert refused.status_code == 413
        assert refused.json()["detail"] == "messages hold 41 characters; the limit is 40 (RAGLOOP_MAX_PROMPT_CHARS)"
        assert runtime.stores.tasks.count_queued() == 0
        assert client.post("/v1/chat", json={"messages": messages(20, 20)}).status_code == 202  # the limit itself is allowed


@pytest.mark.timeout(60)  # were it accepted, the completion would wait for an answer no worker gives
def test_an_openai_prompt_over_max_prompt_chars_is_413_as_an_openai_error(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with serving(from_env(settings, monkeypatch, RAGLOOP_MAX_PROMPT_CHARS="40")) as (client, runtime):
        refused = client.post("/v1/chat/completions", json={"model": "ragloop", "messages": messages(20, 21)})
        assert refused.status_code == 413
        assert refused.json() == {"error": {"message": "messages hold 41 characters; the limit is 40 (RAGLOOP_MAX_PROMPT_CHARS)",
                                            "type": "invalid_request_error", "code": 413}}
        assert runtime.stores.tasks.count_queued() == 0


def test_a_tenant_over_max_queued_per_tenant_is_503_with_retry_after(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-tenant share is refused up front; what was accepted stays queued, and other tenants are still served."""
    limited = from_env(settings, monkeypatch, RAGLOOP_MAX_QUEUED_PER_TENANT="2", RAGLOOP_QUEUE_FULL_RETRY_AFTER_S="9")
    with serving(limited) as (client, runtime):
        ask = {"messages": [{"role": "user", "content": "hello"}], "tenant": "acme"}
        accepted = [client.post("/v1/chat", json=ask) for _ in range(2)]
        refused = client.post("/v1/chat", json=ask)
        assert [r.status_code for r in accepted] == [202, 202]
        assert refused.status_code == 503 and refused.headers["retry-after"] == "9"
        assert refused.json()["detail"] == "tenant 'acme' has 2 waiting tasks (limit 2); retry later"
        assert [client.get(f"/v1/tasks/{r.json()['task_id']}").json()["status"] for r in accepted] == ["queued", "queued"]
        assert client.post("/v1/chat", json={**ask, "tenant": "globex"}).status_code == 202
        assert runtime.stores.tasks.count_queued("acme") == 2


# --- served documents ----------------------------------------------------------------------------

def test_asyncapi_json_serves_the_event_contract_of_every_topic(client: TestClient) -> None:
    """The other half of the API: the AsyncAPI 3 document of every topic and its dead-letter topic."""
    reply = client.get("/asyncapi.json")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    document = reply.json()
    assert document == json.loads(json.dumps(asyncapi_document()))  # the generated document (checked in tests/unit/test_asyncapi.py)
    assert document["asyncapi"] == "3.0.0" and document["info"]["title"] == "ragloop events"
    assert {channel["address"] for channel in document["channels"].values()} == set(all_topic_names())


def test_docs_serves_swagger_ui_over_the_openapi_document(client: TestClient) -> None:
    reply = client.get("/docs")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in reply.text and "url: '/openapi.json'" in reply.text


def test_openapi_json_describes_every_route_and_field_the_readme_lists(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    served = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served >= README_ROUTES, README_ROUTES - served
    schemas = document["components"]["schemas"]
    fields = {name: set(schemas[name]["properties"]) for name in ("DocumentIn", "ChatIn", "FeedbackIn", "CompletionIn")}
    assert {"text", "url", "content_b64", "media_type", "filename", "title", "document_id", "tenant", "metadata", "access"} <= fields["DocumentIn"]
    assert {"messages", "conversation_id", "tenant", "principals", "retrieval", "model_version", "priority", "callback_url"} <= fields["ChatIn"]
    assert {"task_id", "rating", "correction", "comment"} <= fields["FeedbackIn"]
    assert {"retrieval", "principals"} <= fields["CompletionIn"]  # the extra_body extensions


def test_a_url_with_a_port_out_of_range_is_422_naming_the_port(client: TestClient) -> None:
    reply = client.post("/v1/documents", json={"url": "http://h:99999/"})
    assert reply.status_code == 422
    assert "url" in reply.json()["error"] and "port" in reply.json()["error"]


def test_events_of_an_unknown_task_are_404_before_any_stream_starts(client: TestClient) -> None:
    reply = client.get("/v1/tasks/no-such-task/events")
    assert reply.status_code == 404
    assert "no-such-task" in reply.json()["detail"]


def small_bodies(settings: Settings) -> Settings:
    return settings.override(gateway_max_body_bytes_documents=2000, gateway_max_body_bytes_chat=2000,
                             gateway_max_body_bytes_webhooks=2000, gateway_max_body_bytes_default=2000)


@pytest.mark.parametrize("path, setting", [("/v1/documents", "RAGLOOP_GATEWAY_MAX_BODY_BYTES_DOCUMENTS"),
                                           ("/v1/chat", "RAGLOOP_GATEWAY_MAX_BODY_BYTES_CHAT"),
                                           ("/v1/chat/completions", "RAGLOOP_GATEWAY_MAX_BODY_BYTES_CHAT"),
                                           ("/v1/webhooks/generic", "RAGLOOP_GATEWAY_MAX_BODY_BYTES_WEBHOOKS"),
                                           ("/v1/feedback", "RAGLOOP_GATEWAY_MAX_BODY_BYTES_DEFAULT")])
def test_a_body_declared_over_the_routes_limit_is_413_naming_the_limit_and_setting(settings: Settings, path: str, setting: str) -> None:
    with serving(small_bodies(settings)) as (client, _):
        reply = client.post(path, content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert "2000 bytes" in reply.text and setting in reply.text


def test_an_oversized_document_is_refused_before_the_route_runs(settings: Settings) -> None:
    with serving(small_bodies(settings)) as (client, _):
        reply = client.post("/v1/documents", json={"id": "too-big", "text": "x" * 5000})
        assert reply.status_code == 413
        assert client.get("/v1/documents/too-big").status_code == 404  # nothing was written


def test_a_chunked_body_is_cut_off_at_the_limit_with_413(settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"id": "chunked", "text": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    with serving(small_bodies(settings)) as (client, _):
        reply = client.post("/v1/documents", content=chunks(), headers={"content-type": "application/json"})
        assert reply.status_code == 413 and "RAGLOOP_GATEWAY_MAX_BODY_BYTES_DOCUMENTS" in reply.text
        assert client.get("/v1/documents/chunked").status_code == 404
        assert client.post("/v1/documents", json={"id": "small", "text": "fits"}).status_code == 202


def test_small_unauthenticated_bodies_are_still_401(settings: Settings) -> None:
    keyed = small_bodies(settings).override(auth="on", api_keys="key-a=tenantA")
    with serving(keyed) as (client, _):
        assert client.post("/v1/documents", json={"text": "fits"}).status_code == 401
        assert client.post("/v1/documents", json={"text": "x" * 5000}).status_code == 413


def test_document_text_over_the_fetch_limit_is_413(settings: Settings) -> None:
    with serving(settings.override(fetch_max_bytes=100)) as (client, _):
        reply = client.post("/v1/documents", json={"text": "é" * 60})
    assert reply.status_code == 413 and "RAGLOOP_FETCH_MAX_BYTES" in reply.text


def test_the_documents_body_limit_leaves_room_for_the_largest_file_as_base64(settings: Settings) -> None:
    from streams.gateway.body_limit import limit_for

    limit = limit_for(settings, "/v1/documents").bytes
    assert limit > len(base64.b64encode(b"\0" * settings.ingest.fetch_max_bytes))


def test_documents_over_the_backlog_limits_are_503_with_retry_after(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing indexes here, so every accepted document stays queued and counts against the backlog."""
    limited = from_env(settings, monkeypatch, RAGLOOP_INGEST_MAX_QUEUED_PER_TENANT="2", RAGLOOP_INGEST_MAX_QUEUED="3",
                       RAGLOOP_QUEUE_FULL_RETRY_AFTER_S="9")
    with serving(limited) as (client, _):
        accepted = [client.post("/v1/documents", json={"text": "hello", "tenant": "acme"}) for _ in range(2)]
        refused = client.post("/v1/documents", json={"id": "refused", "text": "hello", "tenant": "acme"})
        assert [r.status_code for r in accepted] == [202, 202]
        assert refused.status_code == 503 and refused.headers["retry-after"] == "9"
        assert "RAGLOOP_INGEST_MAX_QUEUED_PER_TENANT" in refused.json()["detail"]
        assert client.get("/v1/documents/refused").status_code == 404  # refused before anything was written
        assert client.post("/v1/documents", json={"text": "hello", "tenant": "globex"}).status_code == 202
        overall = client.post("/v1/documents", json={"text": "hello", "tenant": "initech"})
        assert overall.status_code == 503 and "RAGLOOP_INGEST_MAX_QUEUED" in overall.json()["detail"]


def test_with_the_broker_full_chat_and_feedback_are_accepted_into_the_outbox(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full (or down) broker does not refuse accepted work: the task row and the feedback are durable
    with their events in the outbox, which the relay delivers once there is room."""
    from streams.brokers.embedded import BrokerFull

    with serving(settings) as (client, runtime):
        async def full(*_: object, **__: object) -> None:
            raise BrokerFull("the embedded broker's queue is full")

        monkeypatch.setattr(runtime.broker, "publish", full)  # the edge: a broker whose queues are full
        task = client.post("/v1/chat", json={"messages": [{"role": "user", "content": "hello"}]})
        assert task.status_code == 202, task.text
        feedback = client.post("/v1/feedback", json={"task_id": task.json()["task_id"], "rating": "up"})
        assert feedback.status_code == 202, feedback.text
        owed = {entry.type for entry in runtime.outbox.store.unsent(runtime.outbox.scope)}
    assert {"chat.requests", "feedback.events"} <= owed, owed
