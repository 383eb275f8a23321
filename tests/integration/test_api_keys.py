"""API keys mapped to tenants, over real HTTP: off in embedded mode, on in cluster mode (or when asked),
`Authorization: Bearer` or `X-API-Key`, a key never sees another tenant's tasks or documents, and a
key's principals (not the ones a caller claims) decide which restricted documents it can read."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import openai
import pytest
from pydantic import SecretStr

from schemas.events import ChatRequest, ChatTurn, principals_fingerprint
from schemas.settings import Settings
from schemas.settings_sections import SecuritySettings
from streams.gateway.app import create_app
from streams.gateway.auth import KeyGrant, parse_api_keys
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from streams.signing import RAGLOOP_V2
from streams.task_store import task_from_request
from streams.tasks import IdempotencyConflict, TaskService, TokenHub
from tests.support import wait_for

KEYS = {"key-a": KeyGrant("tenantA"), "key-b": KeyGrant("tenantB")}
A = {"Authorization": "Bearer key-a"}
P = {"Authorization": "Bearer key-p"}  # tenantA as alice and team-x
CHAT = {"messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def keyed(settings: Settings) -> Settings:
    return settings.override(auth="on", api_keys=SecretStr("key-a=tenantA, key-b=tenantB, key-p=tenantA|alice|team-x"),
                             webhook_keys=SecretStr("hook=whsec=default"))


@contextmanager
def gateway(settings: Settings, roles: Sequence[str] = ()) -> Iterator[tuple[httpx.Client, Runtime, str]]:
    runtime = Runtime(settings, roles)  # by default accept only: nothing consumes, so tasks stay queued
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, runtime, url


def stored_task(runtime: Runtime, tenant: str) -> str:
    request = ChatRequest(tenant=tenant, messages=[ChatTurn(role="user", content="q")])
    runtime.stores.tasks.create_task(task_from_request(request))
    return request.task_id


def test_auth_is_off_by_default_in_embedded_mode(settings: Settings) -> None:
    embedded = settings.override(auth=SecuritySettings.model_fields["auth"].default)
    assert embedded.security.auth == "auto" and not embedded.auth_enabled
    with gateway(embedded) as (client, _, _):
        assert client.post("/v1/chat", json=CHAT).status_code == 202


def test_auth_is_on_by_default_with_a_kafka_broker_unless_turned_off(settings: Settings) -> None:
    cluster = settings.override(broker_url="kafka://127.0.0.1:9092", auth=SecuritySettings.model_fields["auth"].default)
    assert cluster.auth_enabled and not cluster.override(auth="off").auth_enabled
    assert settings.override(auth="on").auth_enabled


def test_auto_auth_is_on_in_embedded_mode_once_keys_are_set(settings: Settings) -> None:
    embedded = settings.override(auth="auto", api_keys=SecretStr("key-a=tenantA"))
    assert embedded.broker.is_embedded and embedded.auth_enabled
    with gateway(embedded) as (client, _, _):
        assert client.post("/v1/chat", json=CHAT).status_code == 401
        assert client.post("/v1/chat", json=CHAT, headers=A).status_code == 202


@pytest.mark.parametrize("method, path", [("GET", "/v1/models"), ("POST", "/v1/chat"), ("GET", "/v1/tasks/t1"), ("DELETE", "/v1/tasks/t1"),
                                          ("POST", "/v1/documents"), ("POST", "/v1/feedback"), ("POST", "/v1/chat/completions")])
def test_every_v1_route_needs_a_key(keyed: Settings, method: str, path: str) -> None:
    with gateway(keyed) as (client, runtime, _):
        reply = client.request(method, path, json=CHAT)
        assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer", reply.text
        assert runtime.stores.tasks.count_queued() == 0


def test_unknown_key_is_401(keyed: Settings) -> None:
    with gateway(keyed) as (client, _, _):
        reply = client.post("/v1/chat", json=CHAT, headers={"Authorization": "Bearer key-c"})
    assert reply.status_code == 401 and "unknown API key" in reply.json()["detail"]


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer key-a"}, {"X-API-Key": "key-a"}])
def test_a_key_is_accepted_as_bearer_token_or_x_api_key(keyed: Settings, headers: dict[str, str]) -> None:
    with gateway(keyed) as (client, _, _):
        assert client.post("/v1/chat", json=CHAT, headers=headers).status_code == 202


def test_openai_client_authenticates_with_its_api_key(keyed: Settings) -> None:
    with gateway(keyed) as (_, _, url):
        models = openai.OpenAI(base_url=f"{url}/v1", api_key="key-a").models.list()
        assert [m.id for m in models.data] == ["smollm2-135m-instruct@base"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong").models.list()


def test_health_and_metrics_stay_open(keyed: Settings) -> None:
    with gateway(keyed) as (client, _, _):
        assert client.get("/healthz").status_code == 200 and client.get("/metrics").status_code == 200


def test_webhooks_are_authenticated_by_signature_not_by_key(keyed: Settings) -> None:
    body = json.dumps({"text": "hello"}).encode()
    with gateway(keyed) as (client, _, _):
        reply = client.post("/v1/webhooks/generic", content=body,
                            headers={"Content-Type": "application/json", "X-Ragloop-Key-Id": "hook", **RAGLOOP_V2.sign("whsec", body)})
    assert reply.status_code == 202, reply.text


def test_a_key_reads_its_own_tenants_task(keyed: Settings) -> None:
    with gateway(keyed) as (client, runtime, _):
        mine = stored_task(runtime, "tenantA")
        assert client.get(f"/v1/tasks/{mine}", headers=A).json()["task_id"] == mine


def test_another_tenants_task_is_404_to_read_cancel_or_follow(keyed: Settings) -> None:
    with gateway(keyed) as (client, runtime, _):
        theirs = stored_task(runtime, "tenantB")
        replies = [client.get(f"/v1/tasks/{theirs}", headers=A), client.delete(f"/v1/tasks/{theirs}", headers=A),
                   client.get(f"/v1/tasks/{theirs}/events", headers=A)]
        assert [r.status_code for r in replies] == [404, 404, 404]
        assert replies[0].json()["detail"] == f"unknown task_id {theirs!r}"  # the same words as a task that does not exist
        assert runtime.stores.tasks.get_task(theirs).status == "queued"  # type: ignore[union-attr]  — not cancelled


def test_another_tenants_document_is_404(keyed: Settings) -> None:
    with gateway(keyed) as (client, runtime, _):
        runtime.stores.documents.upsert_document("doc-b", "tenantB", title="B", status="indexed")
        assert client.get("/v1/documents/doc-b", headers=A).status_code == 404
        assert client.get("/v1/documents/doc-b", headers={"X-API-Key": "key-b"}).status_code == 200


def test_with_auth_on_and_no_keys_configured_everything_is_refused(settings: Settings) -> None:
    with gateway(settings.override(auth="on")) as (client, _, _):
        assert client.post("/v1/chat", json=CHAT, headers=A).status_code == 401


def test_the_keys_tenant_overrides_the_tenant_named_in_the_body(keyed: Settings) -> None:
    with gateway(keyed) as (client, runtime, _):
        reply = client.post("/v1/chat", json={**CHAT, "tenant": "tenantB"}, headers=A)
        assert runtime.stores.tasks.get_task(reply.json()["task_id"]).tenant == "tenantA"  # type: ignore[union-attr]


def test_api_keys_setting_is_key_equals_tenant_pairs(settings: Settings) -> None:
    assert parse_api_keys(settings.override(api_keys=SecretStr(" key-a=tenantA,key-b=tenantB, "))) == KEYS
    with pytest.raises(ValueError, match="entry 2 is not `key=tenant`"):
        parse_api_keys(settings.override(api_keys=SecretStr("key-a=tenantA,key-b")))


def test_api_keys_may_grant_principals_after_a_bar(settings: Settings) -> None:
    keys = parse_api_keys(settings.override(api_keys=SecretStr("key-a=tenantA, key-p = tenantA | alice | team-x")))
    assert keys == {"key-a": KeyGrant("tenantA"), "key-p": KeyGrant("tenantA", ("alice", "team-x"))}
    for bad in ("key-p=tenantA||team-x", "key-p=tenant A|alice"):
        with pytest.raises(ValueError, match=re.escape("entry 1 is not `key=tenant` or `key=tenant|principal|…`")):
            parse_api_keys(settings.override(api_keys=SecretStr(bad)))


def test_the_keys_principals_replace_the_principals_named_in_the_body(keyed: Settings) -> None:
    with gateway(keyed) as (client, runtime, _):
        claims = {**CHAT, "principals": ["admin"]}
        granted = client.post("/v1/chat", json=claims, headers={"Authorization": "Bearer key-p"}).json()["task_id"]
        plain = client.post("/v1/chat", json=claims, headers=A).json()["task_id"]
        assert runtime.stores.tasks.get_task(granted).request["principals"] == ["alice", "team-x"]  # type: ignore[union-attr]
        assert runtime.stores.tasks.get_task(plain).request["principals"] == []  # type: ignore[union-attr]


def test_the_openai_route_reads_as_the_keys_principals(keyed: Settings) -> None:
    with gateway(keyed) as (client, runtime, _):
        body = {"model": "ragloop", "messages": CHAT["messages"], "stream": True, "principals": ["admin"]}
        with client.stream("POST", "/v1/chat/completions", json=body, headers={"Authorization": "Bearer key-p"}) as reply:
            assert reply.status_code == 200
            first = json.loads(next(line for line in reply.iter_lines() if line.startswith("data: ")).removeprefix("data: "))
        task_id = first["id"].removeprefix("chatcmpl-")
        task = runtime.stores.tasks.get_task(task_id)
        assert (task.id, task.tenant, task.request["principals"]) == (task_id, "tenantA", ["alice", "team-x"])  # type: ignore[union-attr]


def test_with_auth_off_the_body_names_the_principals(settings: Settings) -> None:
    with gateway(settings) as (client, runtime, _):
        reply = client.post("/v1/chat", json={**CHAT, "principals": ["alice", "Team X"]})  # free text, like access lists
        assert runtime.stores.tasks.get_task(reply.json()["task_id"]).request["principals"] == ["alice", "Team X"]  # type: ignore[union-attr]
        bad = client.post("/v1/chat", json={**CHAT, "principals": [""]})
        assert bad.status_code == 422 and "principals" in bad.text


def test_a_task_asked_with_principals_is_invisible_to_another_key_of_the_same_tenant(keyed: Settings) -> None:
    granted = {"Authorization": "Bearer key-p"}
    with gateway(keyed) as (client, runtime, _):
        first = client.post("/v1/chat", json=CHAT, headers={**granted, "Idempotency-Key": "q-1"})
        task_id = first.json()["task_id"]
        assert client.get(f"/v1/tasks/{task_id}", headers=granted).status_code == 200
        for method, path in (("GET", f"/v1/tasks/{task_id}"), ("GET", f"/v1/tasks/{task_id}/events"), ("DELETE", f"/v1/tasks/{task_id}")):
            assert client.request(method, path, headers=A).status_code == 404, path
        assert client.post("/v1/feedback", json={"task_id": task_id, "rating": "up"}, headers=A).status_code == 404
        # The same idempotency key from the other key is another task, not a window onto the first one.
        other = client.post("/v1/chat", json=CHAT, headers={**A, "Idempotency-Key": "q-1"})
        assert other.status_code == 202 and other.json()["task_id"] != task_id
        again = client.post("/v1/chat", json=CHAT, headers={**granted, "Idempotency-Key": "q-1"})
        assert again.status_code == 200 and again.json()["task_id"] == task_id
        # Nor can it name the scoped form of the key: `#` is refused, and a task found is checked to be the caller's.
        forged = f"q-1#{principals_fingerprint(('alice', 'team-x'))}"
        assert client.post("/v1/chat", json=CHAT, headers={**A, "Idempotency-Key": forged}).status_code == 422
        plain = ChatRequest(tenant="tenantA", messages=[ChatTurn(role="user", content="q")])
        with pytest.raises(IdempotencyConflict):
            asyncio.run(TaskService(runtime.stores.tasks, runtime.stores.attempts, runtime.publisher, keyed, TokenHub()).submit(plain, idempotency_key=forged))


def test_api_key_principals_must_fit_what_a_request_can_carry(settings: Settings) -> None:
    for bad in ("key-p=tenantA|" + "x" * 201, "key-p=tenantA|" + "|".join(f"p{n}" for n in range(101))):
        with pytest.raises(ValueError, match="entry 1: principals must be 1-200 printable characters each, at most 100"):
            parse_api_keys(settings.override(api_keys=SecretStr(bad)))


def test_an_idempotency_key_naming_another_callers_task_is_409(keyed: Settings) -> None:
    """Gateways before keys were scoped by principals stored them bare: such a key, sent by another key of the
    tenant, names a task that is not the caller's. It is refused (409) on both chat routes, and nothing is queued."""
    with gateway(keyed) as (client, runtime, _):
        theirs = ChatRequest(tenant="tenantA", messages=[ChatTurn(role="user", content="q")], principals=["alice", "team-x"])
        runtime.stores.tasks.create_task(task_from_request(theirs, idempotency_key="q-1"))
        refusal = "this Idempotency-Key was used by another caller; choose another key"
        chat = client.post("/v1/chat", json=CHAT, headers={**A, "Idempotency-Key": "q-1"})
        assert chat.status_code == 409 and chat.json() == {"detail": refusal}
        # Were it accepted, the completion would wait for an answer no worker gives: the client's timeout fails the test.
        completion = client.post("/v1/chat/completions", json={"model": "ragloop", **CHAT}, headers={**A, "Idempotency-Key": "q-1"})
        assert completion.status_code == 409 and completion.json()["error"]["message"] == refusal
        assert runtime.stores.tasks.count_queued("tenantA") == 1  # only theirs


def test_a_restricted_document_is_404_to_keys_without_its_principals(keyed: Settings, unique: str) -> None:
    """A restricted document follows search's rule (#11 item 9): a key of the tenant without its principals cannot
    read its metadata, delete it or re-POST it public (`access: []`); it gets the answers a missing document or
    another tenant's id gets, so nothing tells it apart. The key holding the principal still manages it."""
    document_id = f"handbook-{unique}"
    with gateway(keyed, ["ingest"]) as (client, runtime, _):
        added = client.post("/v1/documents", headers=P, json={"id": document_id, "title": "Handbook", "access": ["team-x"],
                                                             "text": "Team X ships the Ostra release every second Tuesday."})
        assert added.status_code == 202, added.text

        def status() -> str:
            return client.get(f"/v1/documents/{document_id}", headers=P).json()["status"]

        wait_for(lambda: status() == "indexed", timeout=120, what="the document to be indexed")
        assert runtime.services.backend.count("tenantA") > 0
        missing = client.get(f"/v1/documents/missing-{unique}", headers=A)
        for headers in (A, {"X-API-Key": "key-b"}):
            inspected = client.get(f"/v1/documents/{document_id}", headers=headers)
            assert (inspected.status_code, inspected.json()) == (404, {"detail": f"unknown document_id {document_id!r}"})
            assert missing.status_code == 404
            assert client.delete(f"/v1/documents/{document_id}", headers=headers).status_code == 404
            public = client.post("/v1/documents", headers=headers, json={"id": document_id, "access": [], "text": "Now public."})
            assert (public.status_code, public.json()) == (409, {"detail": f"document_id {document_id!r} is taken; "
                                                                           "choose another id (or leave it out for a fresh one)"})
        assert runtime.stores.documents.access_of(document_id) == ["team-x"]
        deleted = client.delete(f"/v1/documents/{document_id}", headers=P)
        assert (deleted.status_code, deleted.json()) == (202, {"document_id": document_id, "status": "indexed"})
        wait_for(lambda: status() == "deleted", timeout=120, what="the document to be deleted")
        assert runtime.services.backend.count("tenantA") == 0


def test_an_unrestricted_document_is_managed_by_any_key_of_its_tenant(keyed: Settings, unique: str) -> None:
    document_id = f"notice-{unique}"
    with gateway(keyed) as (client, _, _):
        assert client.post("/v1/documents", headers=P, json={"id": document_id, "text": "Canteen opens at nine."}).status_code == 202
        assert client.get(f"/v1/documents/{document_id}", headers=A).status_code == 200
        assert client.post("/v1/documents", headers=A, json={"id": document_id, "text": "Canteen opens at ten."}).status_code == 202
        assert client.get(f"/v1/documents/{document_id}", headers={"X-API-Key": "key-b"}).status_code == 404
