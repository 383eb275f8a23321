"""The OpenAI-compatible engine shows a question's images to a vision model, and only to one: the request body
is read at the HTTP edge (an httpx transport that records what would go on the wire)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from models.llm.base import ChatMessage, GenerationParams
from models.llm.factory import open_engine
from models.llm.openai_engine import OpenAICompatibleEngine

IMAGE = "data:image/png;base64,iVBORw0KGgo="
MESSAGES = [ChatMessage(role="system", content="Answer from the context."), ChatMessage(role="user", content="earlier"),
            ChatMessage(role="assistant", content="ok"), ChatMessage(role="user", content="Which is like this?")]


def sent_messages(vision: bool, images: list[str], *, stream: bool = False) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if stream:
            return httpx.Response(200, text='data: {"choices": [{"delta": {"content": "ok"}}]}\n\ndata: [DONE]\n\n')
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})

    with OpenAICompatibleEngine("http://vlm:8000/v1", "vlm", transport=httpx.MockTransport(answer), vision=vision) as engine:
        params = GenerationParams(images=images)
        if stream:
            assert "".join(engine.stream(MESSAGES, params)) == "ok"
        else:
            assert engine.generate(MESSAGES, params).text == "ok"
    return bodies[0]["messages"]


@pytest.mark.parametrize("stream", [False, True])
def test_with_vision_the_images_are_image_url_parts_of_the_last_user_message(stream: bool) -> None:
    messages = sent_messages(True, [IMAGE], stream=stream)
    assert messages[-1] == {"role": "user", "content": [{"type": "text", "text": "Which is like this?"},
                                                        {"type": "image_url", "image_url": {"url": IMAGE}}]}
    assert messages[:-1] == [m.model_dump() for m in MESSAGES[:-1]]  # earlier turns stay text


def test_without_vision_the_request_is_text_only() -> None:
    assert sent_messages(False, [IMAGE]) == [m.model_dump() for m in MESSAGES]


def test_with_vision_and_no_images_the_request_is_text_only() -> None:
    assert sent_messages(True, []) == [m.model_dump() for m in MESSAGES]


def test_the_setting_reaches_the_remote_engine_and_a_local_engine_refuses_it() -> None:
    assert open_engine("vllm://vlm:8000?model=vlm", vision=True).accepts_images is True
    assert open_engine("vllm://vlm:8000?model=vlm").accepts_images is False
    with pytest.raises(ValueError, match="RAGLOOP_LLM_VISION is on but RAGLOOP_LLM='smollm2' is a local text-only engine"):
        open_engine("smollm2", vision=True)
