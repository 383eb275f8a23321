"""#11 item 11: credentials in service URLs never reach a log line or the start-up description,
`/v1/models` names adapters without server paths, and an API key may pin only the active version."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import SecretStr
from structlog.testing import capture_logs

from schemas.settings import Settings
from schemas.tables import ModelVersionRecord
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime

A = {"Authorization": "Bearer key-a"}
SECRET = "s3cr3t-pw"


def test_a_search_url_password_is_neither_described_nor_logged(settings: Settings) -> None:
    credentialed = settings.override(search_url=f"http://admin:{SECRET}@127.0.0.1:9200")
    runtime = Runtime(credentialed, [])
    described = runtime.describe()
    assert "search http://admin:**********@127.0.0.1:9200" in described and SECRET not in described

    async def start_and_stop() -> None:
        await runtime.start(warm=False)
        await runtime.stop()

    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))  # an earlier test may have set WARNING
    try:
        with capture_logs() as logs:
            asyncio.run(start_and_stop())
    finally:
        structlog.configure(**saved)
    started = [entry for entry in logs if entry["event"] == "runtime started"]
    assert started and started[0]["search"] == "http://admin:**********@127.0.0.1:9200"
    assert SECRET not in repr(logs)


@pytest.fixture
def registry_gateway(settings: Settings, tmp_path: Path) -> Iterator[tuple[httpx.Client, Runtime]]:
    keyed = settings.override(auth="on", api_keys=SecretStr("key-a=tenantA"))
    runtime = Runtime(keyed, [])
    family = keyed.llm.model_family
    runtime.stores.registry.ensure_base_version(family)
    for version, state in (("v-candidate", "candidate"), ("v-rejected", "rejected"), ("v-retired", "retired")):
        runtime.stores.registry.register_version(ModelVersionRecord(version=version, family=family, state=state,
                                                                    adapter_path=str(tmp_path / "adapters" / version)))
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, runtime


def test_models_name_adapters_without_server_paths(registry_gateway: tuple[httpx.Client, Runtime], tmp_path: Path) -> None:
    client, _ = registry_gateway
    listed = client.get("/v1/models", headers=A).json()["models"]
    adapters = {m["version"]: m["adapter_path"] for m in listed}
    assert adapters["v-candidate"] == "v-candidate" and adapters[f"{listed[0]['family']}@base"] is None
    assert str(tmp_path) not in repr(listed)


@pytest.mark.parametrize("version", ["v-candidate", "v-rejected", "v-retired", "v-unknown"])
def test_an_api_key_may_pin_only_the_active_version(registry_gateway: tuple[httpx.Client, Runtime], version: str) -> None:
    client, runtime = registry_gateway
    active = runtime.stores.registry.active_version(runtime.settings.llm.model_family).version
    messages = [{"role": "user", "content": "hello"}]
    chat = client.post("/v1/chat", headers=A, json={"messages": messages, "model_version": version})
    completion = client.post("/v1/chat/completions", headers=A, json={"model": version, "messages": messages})
    refusal = (f"model_version {version!r} is unknown or not available to API keys "
               f"(only the versions serving the key's tenant may be pinned); available: [{active!r}]")
    assert (chat.status_code, chat.json()) == (404, {"detail": refusal})
    assert completion.status_code == 404 and completion.json()["error"]["message"] == refusal
    assert runtime.stores.tasks.count_queued() == 0
    pinned = client.post("/v1/chat", headers=A, json={"messages": messages, "model_version": active})
    assert pinned.status_code == 202, pinned.text


def test_an_api_key_may_pin_its_tenants_serving_versions_and_never_another_tenants(registry_gateway: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = registry_gateway
    registry, family = runtime.stores.registry, runtime.settings.llm.model_family
    for version, tenant in (("v-a-active", "tenantA"), ("v-a-canary", "tenantA"), ("v-b-active", "tenantB")):
        registry.register_candidate(ModelVersionRecord(version=version, family=family, tenant=tenant), actor="cli", reason="test")
    registry.promote("v-a-active", actor="cli", reason="test")
    registry.start_canary("v-a-canary", share=0.1, actor="cli", reason="test")
    registry.promote("v-b-active", actor="cli", reason="test")
    messages = [{"role": "user", "content": "hello"}]
    for version in ("v-a-active", "v-a-canary"):
        assert client.post("/v1/chat", headers=A, json={"messages": messages, "model_version": version}).status_code == 202
    chat = client.post("/v1/chat", headers=A, json={"messages": messages, "model_version": "v-b-active"})
    completion = client.post("/v1/chat/completions", headers=A, json={"model": "v-b-active", "messages": messages})
    assert chat.status_code == completion.status_code == 404
    assert "v-b-active" not in chat.json()["detail"].split("available:")[1]  # nor is it named to the other tenant
