"""models.llm.factory.open_engine: the RAGLOOP_LLM setting picks and configures the engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Header

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.fetch import ensure_smollm2
from models.llm.base import GenerationParams, LLMEngine
from models.llm.chat_format import encode_prompt
from models.llm.factory import local_checkpoint, open_engine
from models.llm.openai_engine import OpenAICompatibleEngine
from models.llm.transformers_engine import TransformersEngine
from schemas.settings import Settings
from streams.gateway.server import serve_in_thread
from tests.unit.test_models_transformers_engine import RAG_MESSAGES, SHORT
from tests.vllm_protocol_double import create_app, serve


@pytest.fixture(scope="module")
def local() -> TransformersEngine:
    return open_engine("smollm2")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def base_url(local) -> Iterator[str]:
    with serve(create_app(local, "smollm2")) as url:
        yield url


def test_default_spec_is_smollm2_on_transformers(local):
    assert isinstance(local, TransformersEngine)
    assert local.name == "SmolLM2-135M-Instruct"


def test_model_cache_chooses_where_smollm2_lives():
    cache = ensure_smollm2().parent
    engine = open_engine("smollm2", model_cache=cache)
    assert engine.model_path == cache / "SmolLM2-135M-Instruct"  # type: ignore[attr-defined]


def test_a_local_checkpoint_folder_is_served_by_transformers():
    engine = open_engine(str(ensure_smollm2()))
    assert isinstance(engine, TransformersEngine) and isinstance(engine, LLMEngine)


@pytest.mark.parametrize(
    ("spec", "base_url", "model"),
    [
        ("vllm://gpu-1:8000?model=Qwen/Qwen2.5-7B-Instruct", "http://gpu-1:8000/v1", "Qwen/Qwen2.5-7B-Instruct"),
        ("vllm://gpu-1:8000/v1/?model=m", "http://gpu-1:8000/v1", "m"),
        ("openai://127.0.0.1:8080/v1?model=smollm2", "http://127.0.0.1:8080/v1", "smollm2"),
        ("openai+https://llm.example.com/v1?model=m", "https://llm.example.com/v1", "m"),
        ("vllm+https://llm.example.com?model=m&timeout=5", "https://llm.example.com/v1", "m"),
        ("openai+http://10.0.0.2:9000/api/v1?model=m", "http://10.0.0.2:9000/api/v1", "m"),
    ],
)
def test_server_urls_become_openai_compatible_engines(spec, base_url, model):
    engine = open_engine(spec)  # no request is made until first use
    assert isinstance(engine, OpenAICompatibleEngine)
    assert (engine.base_url, engine.model) == (base_url, model)


def test_api_key_reaches_the_server_as_a_bearer_token(monkeypatch):
    """Processes pass RAGLOOP_LLM_API_KEY through the settings (streams/services.py does so)."""
    received: list[str | None] = []
    app = FastAPI()

    @app.get("/v1/models")
    def models(authorization: str | None = Header(None)) -> dict[str, object]:
        received.append(authorization)
        return {"object": "list", "data": [{"id": "m", "object": "model"}]}

    monkeypatch.setenv("RAGLOOP_LLM_API_KEY", "from-env")
    with serve_in_thread(app) as url:
        spec = url.replace("http://", "vllm://") + "/v1"  # no model named: the engine asks /v1/models
        key = Settings().llm.api_key
        assert key is not None and open_engine(spec, api_key=key.get_secret_value()).name == "m"
        assert open_engine(spec, api_key="given").name == "m"
    assert received == ["Bearer from-env", "Bearer given"]


@pytest.mark.slow  # generates with SmolLM2
def test_a_server_url_reaches_the_server(base_url, local):
    remote = open_engine(base_url.replace("http://", "openai://"))  # model discovered from /v1/models
    assert remote.name == "smollm2"
    assert remote.generate(RAG_MESSAGES, SHORT).text == local.generate(RAG_MESSAGES, SHORT).text


@pytest.mark.parametrize(
    "spec",
    ["gpt-4", "/no/such/folder", "ftp://h:1?model=m", "vllm+grpc://h:1?model=m", "vllm://?model=m", "vllm://h:1?modle=m"],
)
def test_unusable_specs_are_refused_naming_the_accepted_forms(spec):
    with pytest.raises(ValueError, match=r"accepted|unknown parameters") as caught:
        open_engine(spec)
    assert spec in str(caught.value)


def test_the_checkpoint_to_train_on_is_the_local_folder_a_spec_names(tmp_path):
    assert local_checkpoint("smollm2") == ensure_smollm2()
    assert local_checkpoint(f" {tmp_path} ") == tmp_path


def test_a_remote_server_has_no_checkpoint_to_train_on():
    with pytest.raises(ValueError, match="is a remote server; set RAGLOOP_TRAIN_BASE_MODEL"):
        local_checkpoint("vllm://gpu-1:8000?model=m")


def _tiny_checkpoint(path, *, chat_template: bool = True, eos: list[int] | None = None):
    """A 2-layer random Llama with SmolLM2's tokenizer: a stand-in for any local HF folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(ensure_smollm2())
    config.update({"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16})
    model = AutoModelForCausalLM.from_config(config)
    if eos is not None:
        model.generation_config.eos_token_id = eos
    model.save_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(ensure_smollm2())
    if not chat_template:
        tokenizer.chat_template = None
    tokenizer.save_pretrained(path)
    return path


def test_any_local_causal_lm_folder_serves_chat(tmp_path):
    engine = open_engine(str(_tiny_checkpoint(tmp_path / "tiny-llama")))
    generation = engine.generate(RAG_MESSAGES, SHORT)
    assert generation.prompt_tokens > 0 and 1 <= generation.completion_tokens <= SHORT.max_new_tokens


def _first_greedy_token(path: Path) -> int:
    """The token the checkpoint itself picks first for RAG_MESSAGES, read from its logits."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = encode_prompt(AutoTokenizer.from_pretrained(path), RAG_MESSAGES)
    with torch.inference_mode():
        logits = AutoModelForCausalLM.from_pretrained(path)(torch.tensor([prompt])).logits
    return int(logits[0, -1].argmax())


def test_every_end_token_in_the_generation_config_ends_the_answer(tmp_path):
    """Llama 3 lists <|eot_id|> and <|end_of_text|>; any listed end token ends an answer, not only the first."""
    params = GenerationParams(max_new_tokens=8)
    unlisted = open_engine(str(_tiny_checkpoint(tmp_path / "plain"))).generate(RAG_MESSAGES, params)
    assert (unlisted.completion_tokens, unlisted.finish_reason) == (8, "length")  # random weights ramble on
    first = _first_greedy_token(tmp_path / "plain")
    listed = open_engine(str(_tiny_checkpoint(tmp_path / "multi-eos", eos=[1, first]))).generate(RAG_MESSAGES, params)
    assert (listed.completion_tokens, listed.finish_reason) == (1, "stop")


def test_a_checkpoint_without_a_chat_template_is_refused(tmp_path):
    with pytest.raises(ValueError, match="chat template"):
        open_engine(str(_tiny_checkpoint(tmp_path / "base-only", chat_template=False)))
