"""tests/vllm_protocol_double.py answers like vLLM's OpenAI-compatible server.

The engine tests (test_models_openai_engine.py) are only as good as this double, so its answers are
pinned here to what vLLM's code returns (sources cited in the double's docstring): routes, status
codes, the `ErrorResponse` body and the model cards. The messages are vLLM's own; the engine keys on
"already" in the 400 and on a 404 whose body is FastAPI's `{"detail": "Not Found"}` for a missing route.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.fetch import ensure_smollm2
from models.llm.transformers_engine import TransformersEngine
from tests.unit.test_models_transformers_engine import make_random_adapter
from tests.vllm_protocol_double import create_app

BASE = "smollm2"


@pytest.fixture(scope="module")
def engine() -> TransformersEngine:
    return TransformersEngine(ensure_smollm2())


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_adapter(tmp_path_factory.mktemp("double-adapters") / "v1", seed=0)


@pytest.fixture
def vllm(engine: TransformersEngine) -> Iterator[TestClient]:
    """A fresh server per test: no adapter loaded yet."""
    with TestClient(create_app(engine, BASE)) as client:
        yield client


def vllm_error(status: int, kind: str, message: str, param: str | None = None) -> dict:
    """`ErrorResponse.model_dump()` as vLLM sends it: `code` repeats the HTTP status as an int."""
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def test_a_loaded_adapter_is_answered_with_plain_text_200(vllm: TestClient, adapter: Path) -> None:
    response = vllm.post("/v1/load_lora_adapter", json={"lora_name": "v1", "lora_path": str(adapter)})
    assert (response.status_code, response.text) == (200, "Success: LoRA adapter 'v1' added successfully.")
    assert "json" not in response.headers.get("content-type", "")


def test_models_list_the_base_without_a_parent_and_each_adapter_with_its_path_under_it(vllm: TestClient, adapter: Path) -> None:
    vllm.post("/v1/load_lora_adapter", json={"lora_name": "v1", "lora_path": str(adapter)})
    cards = vllm.get("/v1/models").json()
    assert cards["object"] == "list"
    assert [(c["id"], c["object"], c["root"], c["parent"]) for c in cards["data"]] == [
        (BASE, "model", BASE, None), ("v1", "model", str(adapter), BASE)]


def test_loading_a_loaded_name_again_is_a_400_invalid_user_input(vllm: TestClient, adapter: Path) -> None:
    body = {"lora_name": "v1", "lora_path": str(adapter)}
    vllm.post("/v1/load_lora_adapter", json=body)
    response = vllm.post("/v1/load_lora_adapter", json=body)
    assert response.status_code == 400
    assert response.json() == vllm_error(400, "InvalidUserInput", "The lora adapter 'v1' has already been loaded. "
                                         "If you want to load the adapter in place, set 'load_inplace' to True.")


def test_load_inplace_replaces_a_loaded_name(vllm: TestClient, adapter: Path) -> None:
    vllm.post("/v1/load_lora_adapter", json={"lora_name": "v1", "lora_path": str(adapter)})
    response = vllm.post("/v1/load_lora_adapter", json={"lora_name": "v1", "lora_path": str(adapter), "load_inplace": True})
    assert response.status_code == 200


def test_a_path_without_an_adapter_is_a_404_not_found(vllm: TestClient, tmp_path: Path) -> None:
    response = vllm.post("/v1/load_lora_adapter", json={"lora_name": "ghost", "lora_path": str(tmp_path / "ghost")})
    assert response.status_code == 404
    assert response.json() == vllm_error(404, "NotFoundError", f"Loading lora ghost failed: No adapter found for {tmp_path / 'ghost'}")


def test_an_empty_name_or_path_is_a_400(vllm: TestClient) -> None:
    response = vllm.post("/v1/load_lora_adapter", json={"lora_name": "", "lora_path": "/adapters/v1"})
    assert response.json() == vllm_error(400, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided.")
    response = vllm.post("/v1/unload_lora_adapter", json={"lora_name": ""})
    assert response.json() == vllm_error(400, "InvalidUserInput", "'lora_name' needs to be provided to unload a LoRA adapter.")


def test_unloading_is_plain_text_200_and_a_name_not_loaded_is_a_404(vllm: TestClient, adapter: Path) -> None:
    vllm.post("/v1/load_lora_adapter", json={"lora_name": "v1", "lora_path": str(adapter)})
    response = vllm.post("/v1/unload_lora_adapter", json={"lora_name": "v1"})
    assert (response.status_code, response.text) == (200, "Success: LoRA adapter 'v1' removed successfully.")
    response = vllm.post("/v1/unload_lora_adapter", json={"lora_name": "v1"})
    assert response.status_code == 404
    assert response.json() == vllm_error(404, "NotFoundError", "The lora adapter 'v1' cannot be found.")


def test_without_runtime_lora_updating_the_routes_do_not_exist(engine: TransformersEngine) -> None:
    """vLLM attaches the routes only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; otherwise a plain 404."""
    with TestClient(create_app(engine, BASE, runtime_lora=False)) as client:
        for route in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
            response = client.post(route, json={"lora_name": "v1", "lora_path": "/adapters/v1"})
            assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


def test_a_chat_for_a_model_not_served_is_a_404_naming_it(vllm: TestClient) -> None:
    response = vllm.post("/v1/chat/completions", json={"model": "v9", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 404
    assert response.json() == vllm_error(404, "NotFoundError", "The model `v9` does not exist.", param="model")
