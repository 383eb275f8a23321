"""Images in chat through the official `openai` client: `image_url` parts (data: and https: URLs) are accepted on
/v1/chat/completions, checked at the door (size, decodability, the SSRF guard) with 4xx that say why, and a
"draw me …" request in chat comes back with the generated image's URL."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from tests.tiny_diffusion import build_tiny_pipeline


def png_data_url(size: tuple[int, int] = (32, 24)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ask(client: openai.OpenAI, text: str, url: str) -> str:
    completion = client.chat.completions.create(model="ragloop", messages=[{"role": "user", "content": [
        {"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}])
    return completion.choices[0].message.content or ""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("diffusion"))


@pytest.fixture
def client(settings: Settings, checkpoint: Path) -> Iterator[openai.OpenAI]:
    configured = settings.override(image_gen_checkpoint=checkpoint, image_gen_size=64, image_gen_steps=2, gateway_max_image_bytes=4096,
                                   gateway_max_image_pixels=250_000)
    with serve_in_thread(create_app(Runtime(configured, ["agent", "images"]))) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed-in-embedded-mode", max_retries=0)


@pytest.mark.slow  # the agent role loads SmolLM2 (the image request itself is answered by the tool, without decoding)
def test_an_image_part_is_accepted_and_a_draw_request_answers_with_the_image_url(client: openai.OpenAI) -> None:
    answer = ask(client, "draw me a red bicycle like this one", png_data_url())
    assert "/v1/images/generations/" in answer and "/content" in answer, answer


@pytest.mark.slow
@pytest.mark.parametrize(("url", "status", "message"), [
    ("data:image/png;base64,bm90IGFuIGltYWdl", 422, "cannot be decoded"),
    ("data:image/png;base64,%%%", 422, "not valid base64"),
    (png_data_url((200, 200)) + "A" * 8000, 413, "RAGLOOP_GATEWAY_MAX_IMAGE_BYTES"),
    (png_data_url((600, 600)), 422, "RAGLOOP_GATEWAY_MAX_IMAGE_PIXELS"),  # small file, many pixels: a bomb
    ("http://example.com/cat.png", 422, "must be `https://"),
    ("https://127.0.0.1/cat.png", 422, "127.0.0.1"),
    ("file:///etc/passwd", 422, "must be `https://"),
])
def test_bad_images_are_refused_saying_why(client: openai.OpenAI, url: str, status: int, message: str) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        ask(client, "what is in this picture?", url)
    assert refused.value.status_code == status and message in str(refused.value.body), refused.value.body


def test_v1_chat_takes_the_same_parts_and_refuses_the_same_way(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    def chat(url: str) -> tuple[int, str]:
        message = {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}
        answer = client.post("/v1/chat", json={"messages": [message]})
        return answer.status_code, answer.text

    with TestClient(create_app(Runtime(settings, roles=[]))) as client:
        assert chat(png_data_url())[0] == 202
        status, text = chat("data:image/png;base64,bm90IGFuIGltYWdl")
        assert status == 422 and "messages.0.content.1: the image cannot be decoded" in text
        status, text = chat("https://127.0.0.1/cat.png")
        assert status == 422 and "127.0.0.1" in text
