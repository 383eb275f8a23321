"""models.llm.OpenAICompatibleEngine against a vLLM test double on loopback.

The double (tests/vllm_protocol_double.py) answers with vLLM's routes, status codes and bodies,
pinned to vLLM's code by tests/unit/test_vllm_protocol_double.py, and is backed by the real
TransformersEngine with SmolLM2, so answers, token counts and adapter switching are checked
against the engine the remote one stands in for. No real vLLM runs here (docs/engines.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.fetch import ensure_smollm2
from models.llm.base import GenerationParams, LLMEngine
from models.llm.openai_engine import EngineServerError, OpenAICompatibleEngine
from models.llm.transformers_engine import TransformersEngine
from tests.unit.test_models_transformers_engine import RAG_MESSAGES, SHORT, make_random_adapter
from tests.vllm_protocol_double import create_app, serve

pytestmark = pytest.mark.slow  # generates with SmolLM2

BASE = "smollm2"


@pytest.fixture(scope="module")
def local() -> TransformersEngine:
    return TransformersEngine(ensure_smollm2())


@pytest.fixture(scope="module")
def app(local):
    return create_app(local, BASE)


@pytest.fixture(scope="module")
def base_url(app) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture
def remote(base_url, app) -> Iterator[OpenAICompatibleEngine]:
    app.state.omit_usage = False
    with OpenAICompatibleEngine(base_url, BASE, timeout=120) as engine:
        yield engine


@pytest.fixture(scope="module")
def expected(local):
    return local.generate(RAG_MESSAGES, SHORT)


@pytest.fixture(scope="module")
def adapter_v1(tmp_path_factory) -> Path:
    return make_random_adapter(tmp_path_factory.mktemp("remote-adapters") / "v1", seed=0)


def test_engine_meets_the_llm_engine_protocol(remote):
    assert isinstance(remote, LLMEngine)
    assert remote.name == BASE


def test_generation_equals_the_served_engine_with_its_token_counts(remote, expected):
    generation = remote.generate(RAG_MESSAGES, SHORT)
    assert generation == expected


def test_sampling_params_and_stops_reach_the_server(remote, app):
    params = GenerationParams(max_new_tokens=7, temperature=0.7, top_p=0.9, stop=["\n\n"])
    remote.generate(RAG_MESSAGES, params)
    sent = app.state.requests[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"], sent["stop"]) == (7, 0.7, 0.9, ["\n\n"])
    assert sent["model"] == BASE and sent["stream"] is False


def test_max_tokens_ends_with_length(remote):
    generation = remote.generate(RAG_MESSAGES, GenerationParams(max_new_tokens=3))
    assert generation.completion_tokens == 3
    assert generation.finish_reason == "length"


def test_stop_string_cuts_the_text_before_it(remote, expected):
    generation = remote.generate(RAG_MESSAGES, GenerationParams(max_new_tokens=24, stop=["Paris"]))
    assert generation.text == expected.text[: expected.text.index("Paris")]
    assert generation.finish_reason == "stop"


def test_stream_deltas_concatenate_to_the_generated_text(remote, expected, app):
    deltas = list(remote.stream(RAG_MESSAGES, SHORT))
    assert len(deltas) > 1
    assert "".join(deltas) == expected.text
    assert app.state.requests[-1]["stream"] is True


def test_stream_honours_stop_strings_without_leaking_them(remote, expected):
    deltas = list(remote.stream(RAG_MESSAGES, GenerationParams(max_new_tokens=24, stop=["Paris"])))
    assert "".join(deltas) == expected.text[: expected.text.index("Paris")]
    assert all("Par" not in d for d in deltas)


def test_abandoned_stream_leaves_the_server_usable(remote, expected):
    stream = remote.stream(RAG_MESSAGES, GenerationParams(max_new_tokens=64))
    next(stream)
    stream.close()  # closes the HTTP response mid-answer
    assert remote.generate(RAG_MESSAGES, SHORT).text == expected.text


def test_missing_usage_is_estimated(remote, app, expected):
    app.state.omit_usage = True
    generation = remote.generate(RAG_MESSAGES, SHORT)
    assert generation.text == expected.text
    assert 0 < generation.completion_tokens <= 3 * expected.completion_tokens
    assert generation.prompt_tokens > 0


def test_missing_usage_is_exact_with_a_tokenizer(base_url, app, local, expected):
    app.state.omit_usage = True
    with OpenAICompatibleEngine(base_url, BASE, tokenizer=local.tokenizer) as engine:
        generation = engine.generate(RAG_MESSAGES, SHORT)
    ids = local.tokenizer.encode(expected.text)
    assert generation.completion_tokens == len(ids)


def test_model_name_is_discovered_when_not_given(base_url):
    with OpenAICompatibleEngine(base_url) as engine:
        assert engine.name == BASE


def test_unknown_adapter_is_a_key_error_naming_it(remote):
    with pytest.raises(KeyError, match="nope"):
        remote.generate(RAG_MESSAGES, SHORT, adapter="nope")
    with pytest.raises(KeyError, match="nope"):
        list(remote.stream(RAG_MESSAGES, SHORT, adapter="nope"))


def test_adapter_is_loaded_at_runtime_and_selected_per_request(remote, adapter_v1, expected):
    remote.load_adapter("v1", adapter_v1)
    assert remote.adapters() == ["v1"]
    adapted = remote.generate(RAG_MESSAGES, SHORT, adapter="v1")
    assert adapted.adapter == "v1"
    assert adapted.text != expected.text
    assert remote.generate(RAG_MESSAGES, SHORT).text == expected.text
    assert "".join(remote.stream(RAG_MESSAGES, SHORT, adapter="v1")) == adapted.text


def test_loading_an_already_loaded_adapter_is_a_no_op(base_url, adapter_v1, app):
    """A second worker (fresh client) loading the same version meets vLLM's 400 "already loaded"."""
    with OpenAICompatibleEngine(base_url, BASE) as first, OpenAICompatibleEngine(base_url, BASE) as second:
        first.load_adapter("same", adapter_v1)
        before = first.generate(RAG_MESSAGES, SHORT, adapter="same").text
        second.load_adapter("same", adapter_v1)
        second.load_adapter("same", adapter_v1)
        assert second.adapters().count("same") == 1
        assert second.generate(RAG_MESSAGES, SHORT, adapter="same").text == before


def test_a_name_is_never_loaded_from_another_path(remote, adapter_v1, tmp_path):
    remote.load_adapter("versioned", adapter_v1)
    first = remote.generate(RAG_MESSAGES, SHORT, adapter="versioned").text
    with pytest.raises(ValueError, match="one set of weights"):
        remote.load_adapter("versioned", make_random_adapter(tmp_path / "v2", seed=1))
    assert remote.generate(RAG_MESSAGES, SHORT, adapter="versioned").text == first


def test_least_recently_used_adapter_is_unloaded_beyond_the_limit(base_url, adapter_v1, tmp_path, expected):
    adapter_v2 = make_random_adapter(tmp_path / "v2", seed=1)
    with OpenAICompatibleEngine(base_url, BASE, max_adapters=1) as engine:
        engine.load_adapter("lru-1", adapter_v1)
        first = engine.generate(RAG_MESSAGES, SHORT, adapter="lru-1").text
        engine.load_adapter("lru-2", adapter_v2)
        assert "lru-1" not in engine.adapters() and "lru-2" in engine.adapters()  # unloaded on the server
        assert engine.generate(RAG_MESSAGES, SHORT, adapter="lru-1").text == first  # loaded again, on demand
        assert "lru-1" in engine.adapters() and "lru-2" not in engine.adapters()


def test_adapter_path_the_server_cannot_find_is_reported(remote, tmp_path):
    with pytest.raises(FileNotFoundError, match="ghost"):
        remote.load_adapter("ghost", tmp_path / "ghost")


def test_server_without_runtime_lora_says_how_to_enable_it(local):
    with (
        serve(create_app(local, BASE, runtime_lora=False)) as url,
        OpenAICompatibleEngine(url, BASE) as engine,
        pytest.raises(RuntimeError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING"),
    ):
        engine.load_adapter("v1", Path("/adapters/v1"))


def test_server_errors_carry_status_and_the_url(base_url):
    with (
        OpenAICompatibleEngine(base_url + "/wrong-prefix", BASE) as engine,
        pytest.raises(EngineServerError, match="wrong-prefix/chat/completions answered 404") as caught,
    ):
        engine.generate(RAG_MESSAGES, SHORT)
    assert caught.value.status == 404


def test_empty_conversation_is_rejected_before_any_request(remote):
    with pytest.raises(ValueError, match="at least one message"):
        remote.generate([], SHORT)


def test_unreachable_server_fails_fast():
    import httpx

    with OpenAICompatibleEngine("http://127.0.0.1:9/v1", BASE, timeout=2) as engine, pytest.raises(httpx.ConnectError):
        engine.generate(RAG_MESSAGES, SHORT)
