"""A question's images reach a remote engine that takes images. The remote here is ragloop's own
OpenAI-compatible endpoint (its `/v1/chat/completions` accepts `image_url` parts): an
`OpenAICompatibleEngine` pointed at a running ragloop gateway sends the image with RAGLOOP_LLM_VISION on,
and the receiving ragloop carries it on its chat event and searches by it (its answer cites the
tenant's matching image); with vision off the request is text only: no image arrives, nothing is searched by one."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from indexing.images.store import image_id
from models.llm.base import ChatMessage, GenerationParams
from models.llm.openai_engine import OpenAICompatibleEngine
from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from tests.images_support import image_bytes
from tests.support import read_topic

pytestmark = pytest.mark.slow  # the receiving ragloop's agent generates with SmolLM2

RED, BLUE = image_bytes("PNG", color=(200, 30, 30)), image_bytes("PNG", color=(30, 30, 200))
QUESTION = [ChatMessage(role="user", content="which of our pictures is like this?")]


@pytest.fixture(scope="module")
def receiving(tmp_path_factory: pytest.TempPathFactory, clip_checkpoint: tuple[str, Any]) -> Iterator[tuple[str, Runtime]]:
    """A running ragloop (embedded, CLIP on) holding a red and a blue picture of the `default` tenant."""
    name, path = clip_checkpoint
    settings = Settings(home=tmp_path_factory.mktemp("receiving"), broker={"url": "memory://"}, search={"url": "embedded://"},
                        workers={"retry_backoff_s": 0.05}).override(clip_model=name, clip_checkpoint=path, max_new_tokens=8)
    runtime = Runtime(settings, ["ingest", "agent"])
    with serve_in_thread(create_app(runtime)) as url:
        for document_id, data in (("red-square", RED), ("blue-square", BLUE)):
            posted = httpx.post(f"{url}/v1/documents", json={"document_id": document_id, "content_b64": base64.b64encode(data).decode(),
                                                             "filename": f"{document_id}.png", "metadata": {"caption": f"a {document_id}"}})
            assert posted.status_code == 202, posted.text
            done = httpx.get(f"{url}/v1/documents/{document_id}", params={"wait": "true", "timeout": 120}, timeout=130)
            assert done.json()["status"] == "indexed", done.text
        yield url, runtime


def ask(url: str, *, vision: bool) -> None:
    with OpenAICompatibleEngine(f"{url}/v1", "ragloop", vision=vision, timeout=300) as engine:
        engine.generate(QUESTION, GenerationParams(max_new_tokens=8, images=["data:image/png;base64," + base64.b64encode(RED).decode()]))


def last(runtime: Runtime, topic: str) -> dict[str, Any]:
    return read_topic(runtime.settings, runtime.broker, topic)[-1]


def test_a_vision_engine_sends_the_image_and_the_receiving_ragloop_searches_by_it(receiving: tuple[str, Runtime]) -> None:
    url, runtime = receiving
    ask(url, vision=True)
    assert last(runtime, "chat.requests")["images"] == ["data:image/png;base64," + base64.b64encode(RED).decode()]
    response = last(runtime, "chat.responses")
    assert "tool.image_search" in response["timings_ms"], response["timings_ms"]  # searched by the image it was sent
    citations = response["citations"]
    assert citations and citations[0]["image_url"] == f"/v1/images/{image_id('default', RED)}", citations


def test_without_vision_the_engine_sends_no_image(receiving: tuple[str, Runtime]) -> None:
    url, runtime = receiving
    ask(url, vision=False)
    assert last(runtime, "chat.requests")["images"] == []
    assert "tool.image_search" not in last(runtime, "chat.responses")["timings_ms"]  # a text question: retrieval
