"""models.llm.TransformersEngine: greedy chat generation, streaming, stop strings, LoRA switching.

Uses the real SmolLM2-135M-Instruct (converted once into the shared cache) and a randomly
initialised LoRA adapter, so adapter behaviour is checked without training.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.fetch import ensure_smollm2
from models.llm.base import ChatMessage, GenerationParams, LLMEngine
from models.llm.transformers_engine import TransformersEngine
from trainers.dataset import IGNORE_INDEX, TrainingExample, tokenize_example

RAG_MESSAGES = [
    ChatMessage(role="system", content="You are a helpful assistant. Answer using the context."),
    ChatMessage(
        role="user",
        content="Context:\n[1] The Eiffel Tower is in Paris, France.\n[2] Paris is on the Seine.\n\n"
        "Question: In which city is the Eiffel Tower?",
    ),
]
SHORT = GenerationParams(max_new_tokens=24)


@pytest.fixture(scope="module")
def engine() -> TransformersEngine:
    return TransformersEngine(ensure_smollm2())


def make_random_adapter(path: Path, seed: int) -> Path:
    """A LoRA adapter with random A and B, so it visibly changes the model's output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(ensure_smollm2())
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory) -> Path:
    return make_random_adapter(tmp_path_factory.mktemp("adapters") / "random", seed=0)


@pytest.fixture(scope="module")
def base_answer(engine) -> str:
    return engine.generate(RAG_MESSAGES, SHORT).text


def test_engine_meets_the_llm_engine_protocol(engine):
    assert isinstance(engine, LLMEngine)
    assert engine.name == "SmolLM2-135M-Instruct"


@pytest.mark.slow  # generates with SmolLM2
def test_greedy_generation_is_deterministic_and_grounded(engine, base_answer):
    again = engine.generate(RAG_MESSAGES, SHORT)
    assert again.text == base_answer
    assert "Paris" in base_answer
    assert again.adapter is None


@pytest.mark.slow  # generates with SmolLM2
def test_prompt_tokens_match_the_training_tokenisation(engine):
    generation = engine.generate(RAG_MESSAGES, GenerationParams(max_new_tokens=1))
    row = tokenize_example(engine.tokenizer, TrainingExample(messages=RAG_MESSAGES, target="Paris."), 4096)
    assert generation.prompt_tokens == row["labels"].count(IGNORE_INDEX)


@pytest.mark.slow  # generates with SmolLM2
def test_max_new_tokens_ends_with_length(engine):
    generation = engine.generate(RAG_MESSAGES, GenerationParams(max_new_tokens=3))
    assert generation.completion_tokens == 3
    assert generation.finish_reason == "length"


@pytest.mark.slow  # generates with SmolLM2
def test_end_of_turn_ends_with_stop(engine):
    generation = engine.generate(RAG_MESSAGES, GenerationParams(max_new_tokens=64))
    assert generation.finish_reason == "stop"
    assert generation.completion_tokens < 64
    assert "<|im_end|>" not in generation.text


@pytest.mark.slow  # generates with SmolLM2
def test_stop_string_cuts_the_text_before_it(engine, base_answer):
    stop = "Paris"
    assert stop in base_answer
    generation = engine.generate(RAG_MESSAGES, GenerationParams(max_new_tokens=24, stop=[stop]))
    assert generation.text == base_answer[: base_answer.index(stop)]
    assert generation.finish_reason == "stop"


@pytest.mark.slow  # generates with SmolLM2
def test_stream_deltas_concatenate_to_the_generated_text(engine, base_answer):
    deltas = list(engine.stream(RAG_MESSAGES, SHORT))
    assert len(deltas) > 1
    assert "".join(deltas) == base_answer


@pytest.mark.slow  # generates with SmolLM2
def test_stream_honours_stop_strings_without_leaking_them(engine, base_answer):
    params = GenerationParams(max_new_tokens=24, stop=["Paris"])
    deltas = list(engine.stream(RAG_MESSAGES, params))
    assert "".join(deltas) == engine.generate(RAG_MESSAGES, params).text
    assert all("Par" not in d for d in deltas)


@pytest.mark.slow  # generates with SmolLM2
def test_abandoned_stream_releases_the_engine(engine, base_answer):
    stream = engine.stream(RAG_MESSAGES, GenerationParams(max_new_tokens=64))
    next(stream)
    stream.close()  # consumer went away mid-answer
    assert engine.generate(RAG_MESSAGES, SHORT).text == base_answer


def test_unknown_adapter_is_an_error_naming_it(engine):
    with pytest.raises(KeyError, match="nope"):
        engine.generate(RAG_MESSAGES, SHORT, adapter="nope")


@pytest.mark.slow  # generates with SmolLM2
def test_adapter_changes_output_and_none_keeps_base_behaviour(engine, random_adapter, base_answer):
    base_model = engine.base_model
    engine.load_adapter("random", random_adapter)
    engine.load_adapter("random", random_adapter)  # idempotent
    assert engine.adapters() == ["random"]
    adapted = engine.generate(RAG_MESSAGES, SHORT, adapter="random")
    assert adapted.adapter == "random"
    assert adapted.text != base_answer
    assert engine.generate(RAG_MESSAGES, SHORT).text == base_answer
    assert "".join(engine.stream(RAG_MESSAGES, SHORT, adapter="random")) == adapted.text
    assert engine.base_model is base_model  # adapters attach to the resident model


def test_missing_adapter_folder_is_reported(engine, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        engine.load_adapter("ghost", tmp_path)


@pytest.mark.slow  # generates with SmolLM2
def test_a_name_is_never_loaded_from_another_path(engine, random_adapter, tmp_path):
    engine.load_adapter("versioned", random_adapter)
    first = engine.generate(RAG_MESSAGES, SHORT, adapter="versioned").text
    with pytest.raises(ValueError, match="one set of weights"):
        engine.load_adapter("versioned", make_random_adapter(tmp_path / "v2", seed=1))
    assert engine.generate(RAG_MESSAGES, SHORT, adapter="versioned").text == first


def test_max_adapters_below_one_is_refused():
    with pytest.raises(ValueError, match="max_adapters"):
        TransformersEngine(ensure_smollm2(), max_adapters=0)


@pytest.mark.slow  # generates with SmolLM2
def test_least_recently_used_adapter_is_evicted_and_comes_back_on_demand(random_adapter, tmp_path, base_answer):
    engine = TransformersEngine(ensure_smollm2(), max_adapters=2)
    second, third = make_random_adapter(tmp_path / "a2", seed=1), make_random_adapter(tmp_path / "a3", seed=2)
    base_model = engine.base_model
    engine.load_adapter("a1", random_adapter)
    engine.load_adapter("a2", second)
    answers = {name: engine.generate(RAG_MESSAGES, SHORT, adapter=name).text for name in ("a2", "a1")}  # a1 used last
    engine.load_adapter("a3", third)
    assert engine.adapters() == ["a1", "a3"]  # a2 was the least recently used
    assert engine.generate(RAG_MESSAGES, SHORT, adapter="a2").text == answers["a2"]  # attached again from its folder
    assert engine.adapters() == ["a2", "a3"]
    assert engine.generate(RAG_MESSAGES, SHORT, adapter="a1").text == answers["a1"]
    assert engine.generate(RAG_MESSAGES, SHORT).text == base_answer
    assert engine.base_model is base_model  # switching never reloads the base model


@pytest.mark.slow  # generates with SmolLM2
def test_a_stream_keeps_its_adapter_while_another_request_waits(engine, random_adapter, tmp_path):
    other = make_random_adapter(tmp_path / "other", seed=3)
    engine.load_adapter("random", random_adapter)
    engine.load_adapter("other", other)
    params = GenerationParams(max_new_tokens=16)
    expected = {name: engine.generate(RAG_MESSAGES, params, adapter=name).text for name in ("random", "other")}
    stream = engine.stream(RAG_MESSAGES, params, adapter="random")
    pieces = [next(stream)]
    with ThreadPoolExecutor(2) as pool:  # requests for the other adapter and the base weights arrive mid-stream
        others = [pool.submit(engine.generate, RAG_MESSAGES, params, adapter=name) for name in ("other", None)]
        pieces.extend(stream)
        assert [f.result().text for f in others] == [expected["other"], engine.generate(RAG_MESSAGES, params).text]
    assert "".join(pieces) == expected["random"]


# ---- batched generation -----------------------------------------------------------------

SECOND = [
    ChatMessage(role="system", content="Answer briefly."),
    ChatMessage(role="user", content="What is 2+2?"),
]


@pytest.mark.slow  # generates with SmolLM2
def test_batch_answers_equal_one_by_one_answers_in_order(engine):
    batch = engine.generate_batch([RAG_MESSAGES, SECOND], SHORT)
    assert batch == [engine.generate(RAG_MESSAGES, SHORT), engine.generate(SECOND, SHORT)]


@pytest.mark.slow  # generates with SmolLM2
def test_batch_stops_each_row_at_its_own_stop_string(engine):
    params = GenerationParams(max_new_tokens=24, stop=["Paris", "4"])
    batch = engine.generate_batch([RAG_MESSAGES, SECOND], params)
    assert batch == [engine.generate(RAG_MESSAGES, params), engine.generate(SECOND, params)]


@pytest.mark.slow  # generates with SmolLM2
def test_batch_uses_the_named_adapter(engine, random_adapter):
    engine.load_adapter("random", random_adapter)
    batch = engine.generate_batch([RAG_MESSAGES], SHORT, adapter="random")
    assert batch == [engine.generate(RAG_MESSAGES, SHORT, adapter="random")]


def test_empty_batch_is_empty(engine):
    assert engine.generate_batch([], SHORT) == []


# ---- checkpoints ------------------------------------------------------------------------


def test_folder_without_a_model_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        TransformersEngine(tmp_path)
