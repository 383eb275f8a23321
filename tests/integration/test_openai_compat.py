"""The official `openai` client works unchanged against ragloop: models, completions, streaming."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from streams.gateway.server import serve_in_thread


@pytest.fixture
def client(settings: Settings) -> Iterator[openai.OpenAI]:
    runtime = Runtime(settings.model_copy(update={"max_new_tokens": 16}), ["agent"])
    with serve_in_thread(create_app(runtime)) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed-in-embedded-mode", max_retries=0)


def test_models_list_shows_the_active_version(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "smollm2-135m-instruct@base" in ids


def test_non_streaming_completion_returns_an_answer_and_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="ragloop", messages=[{"role": "user", "content": "Say hello."}])
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.model == "smollm2-135m-instruct@base"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_streaming_completion_yields_deltas_that_form_the_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="ragloop", messages=[{"role": "user", "content": "Say hello."}], stream=True)
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text.strip()
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert sum(1 for c in chunks if c.choices[0].delta.content) >= 2  # really streamed, not one blob


def test_unknown_model_is_a_404_listing_the_available_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="smollm2-135m-instruct@base"):
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])


def test_ragloops_own_remote_engine_speaks_to_its_endpoint(settings: Settings) -> None:
    """The engine ragloop uses for vLLM, exercised against ragloop's own OpenAI-compatible endpoint."""
    from models.llm.base import ChatMessage, GenerationParams
    from models.llm.openai_engine import OpenAICompatibleEngine

    runtime = Runtime(settings.model_copy(update={"max_new_tokens": 16}), ["agent"])
    with serve_in_thread(create_app(runtime)) as url:
        engine = OpenAICompatibleEngine(f"{url}/v1", model="ragloop")
        question = [ChatMessage(role="user", content="Say hello.")]
        generation = engine.generate(question, GenerationParams(max_new_tokens=16))
        streamed = "".join(engine.stream(question, GenerationParams(max_new_tokens=16)))
    assert generation.text.strip() and generation.completion_tokens > 0
    assert streamed.strip() == generation.text.strip()  # greedy: the same answer either way
