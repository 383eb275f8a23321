"""People act on model versions through the API: per-tenant lists with exactly one `active`, promote and
rollback audited and published on `model.updated`, tenant walls (404 across them, 403 on the shared
line for a key), and refusals that say why (409 rolling back the base model, 422 for a path as a version)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import col, select

from models.registry import ModelRegistry
from schemas.settings import Settings
from schemas.tables import ModelVersionRecord, OutboxRecord
from streams.gateway.app import create_app
from streams.runtime import Runtime

A = {"Authorization": "Bearer key-a"}
B = {"Authorization": "Bearer key-b"}
FAMILY = "smollm2-135m-instruct"
BASE, A1, A2, B1 = f"{FAMILY}@base", f"{FAMILY}@lora-aaaaaaaaaaa1", f"{FAMILY}@lora-aaaaaaaaaaa2", f"{FAMILY}@lora-bbbbbbbbbbb1"


def candidate(registry: ModelRegistry, version: str, tenant: str | None, parent: str | None = None) -> None:
    registry.register_candidate(ModelVersionRecord(version=version, family=FAMILY, tenant=tenant, parent=parent,
                                                   artifact_uri=f"file:///srv/ragloop/artifacts/{version}"), actor="auto:gate", reason="trained")


@pytest.fixture
def world(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    keyed = settings.override(auth="on", api_keys=SecretStr("key-a=tenantA, key-b=tenantB"))
    runtime = Runtime(keyed, roles=[])
    with TestClient(create_app(runtime)) as client:
        registry = runtime.stores.registry
        registry.ensure_base_version(FAMILY)
        candidate(registry, A1, "tenantA", parent=BASE)
        candidate(registry, A2, "tenantA", parent=A1)
        candidate(registry, B1, "tenantB", parent=BASE)
        yield client, runtime


def published(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.stores.db.session() as s:
        rows = s.exec(select(OutboxRecord).where(OutboxRecord.type == "model.updated").order_by(col(OutboxRecord.seq))).all()
    return [(json.loads(r.payload)["version"], json.loads(r.payload)["state"]) for r in rows]


def test_a_tenant_sees_its_line_and_the_shared_one_with_exactly_one_active(world: tuple[TestClient, Runtime]) -> None:
    client, _ = world
    listed = client.get("/v1/models", headers=A).json()
    assert [m["version"] for m in listed["models"]] == [BASE, A1, A2] and listed["data"] == listed["models"]
    assert listed["tenant"] == "tenantA" and listed["active_for_tenant"] == BASE
    assert [(m["version"], m["state"], m["tenant"]) for m in listed["models"] if m["state"] == "active"] == [(BASE, "active", None)]
    assert {m["adapter_path"] for m in listed["models"]} == {None, A1, A2}  # the artifact's name, never the server's path
    client.post(f"/v1/models/{A1}/promote", headers=A).raise_for_status()
    listed = client.get("/v1/models", headers=A).json()
    assert [(m["version"], m["state"]) for m in listed["models"] if m["state"] in ("active", "standby")] == [(BASE, "standby"), (A1, "active")]
    assert listed["active_for_tenant"] == A1 and next(m for m in listed["models"] if m["version"] == BASE)["line_state"] == "active"
    seen_by_b = client.get("/v1/models", headers=B).json()  # A's promotion changes nothing for B
    assert [m["version"] for m in seen_by_b["models"]] == [BASE, B1] and seen_by_b["active_for_tenant"] == BASE


def test_promote_and_rollback_are_audited_and_published(world: tuple[TestClient, Runtime]) -> None:
    client, runtime = world
    promoted = client.post(f"/v1/models/{A1}/promote", headers=A, json={"reason": "checked ten answers"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["decision"] | {"at": None, "numbers": None} == {"version": A1, "tenant": "tenantA", "action": "promote",
                                                                            "actor": "api:tenantA", "reason": "checked ten answers",
                                                                            "numbers": None, "at": None}
    assert promoted.json()["model"]["state"] == "active" and promoted.json()["active_for_tenant"] == A1
    client.post(f"/v1/models/{A2}/promote", headers=A).raise_for_status()
    rolled = client.post(f"/v1/models/{A2}/rollback", headers=A)
    assert rolled.status_code == 200 and rolled.json()["active_for_tenant"] == A1  # back to the version it replaced
    assert published(runtime) == [(A1, "active"), (A2, "active"), (A1, "retired"), (A2, "rolled_back"), (A1, "active")]
    trail = client.get("/v1/models/decisions", headers=A).json()["decisions"]
    assert [(d["version"], d["action"], d["actor"]) for d in trail if d["actor"].startswith("api:")] == [
        (A1, "promote", "api:tenantA"), (A1, "retire", "api:tenantA"), (A2, "promote", "api:tenantA"),
        (A2, "rollback", "api:tenantA"), (A1, "promote", "api:tenantA")]
    assert all(d["tenant"] in (None, "tenantA") for d in trail)
    assert {d["version"] for d in client.get("/v1/models/decisions", headers=B).json()["decisions"]} == {B1}  # none of A's


def test_another_tenants_version_is_unknown(world: tuple[TestClient, Runtime]) -> None:
    client, runtime = world
    for action in ("promote", "rollback"):
        reply = client.post(f"/v1/models/{B1}/{action}", headers=A)
        assert reply.status_code == 404 and "unknown model version" in reply.json()["detail"], reply.text
    assert runtime.stores.registry.get_version(B1).state == "candidate"  # type: ignore[union-attr]
    assert published(runtime) == []
    assert all(d["version"] != B1 for d in client.get("/v1/models/decisions", headers=A).json()["decisions"])
    assert client.post(f"/v1/models/{FAMILY}@lora-000000000000/promote", headers=A).status_code == 404


def test_a_key_cannot_change_the_shared_line(world: tuple[TestClient, Runtime]) -> None:
    client, runtime = world
    runtime.stores.registry.share(A2, actor="cli", reason="good for everyone")
    reply = client.post(f"/v1/models/{A2}/promote", headers=B)
    assert reply.status_code == 403 and "shared line" in reply.json()["detail"]
    assert runtime.stores.registry.get_version(A2).state == "candidate"  # type: ignore[union-attr]


def test_invalid_transitions_say_why(world: tuple[TestClient, Runtime], settings: Settings) -> None:
    client, _ = world
    reply = client.post(f"/v1/models/{A1}/rollback", headers=A)
    assert reply.status_code == 409 and "cannot roll back" in reply.json()["detail"] and "candidate" in reply.json()["detail"]
    client.post(f"/v1/models/{A1}/promote", headers=A).raise_for_status()
    again = client.post(f"/v1/models/{A1}/promote", headers=A)
    assert again.status_code == 409 and "it is active" in again.json()["detail"]


def test_rolling_back_the_base_model_is_409_with_auth_off(settings: Settings) -> None:
    runtime = Runtime(settings.override(auth="off"), roles=[])
    with TestClient(create_app(runtime)) as client:
        client.get("/v1/models").raise_for_status()
        reply = client.post(f"/v1/models/{BASE}/rollback")
        assert reply.status_code == 409 and "base model" in reply.json()["detail"], reply.text


@pytest.mark.parametrize("bad", ["..%2F..%2Fetc", "a..b", ".hidden"])
def test_a_path_is_not_a_version(world: tuple[TestClient, Runtime], bad: str) -> None:
    client, _ = world
    reply = client.post(f"/v1/models/{bad}/promote", headers=A)
    assert reply.status_code in (404, 422) and reply.status_code != 500
    chat = client.post("/v1/chat", headers=A, json={"messages": [{"role": "user", "content": "hi"}], "model_version": "../../etc"})
    assert chat.status_code == 422 and "model_version" in chat.json()["error"]


@pytest.mark.parametrize("method, path", [("POST", f"/v1/models/{A1}/promote"), ("POST", f"/v1/models/{A1}/rollback"),
                                          ("GET", "/v1/models/decisions")])
def test_acting_needs_a_key(world: tuple[TestClient, Runtime], method: str, path: str) -> None:
    client, runtime = world
    assert client.request(method, path).status_code == 401
    assert runtime.stores.registry.get_version(A1).state == "candidate"  # type: ignore[union-attr]
