"""Test helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import pytest
from kafka import KafkaConsumer

from schemas.events import ChatRequest, ChatResponse, ChatTurn, Citation
from schemas.settings import Settings
from schemas.task_result import TaskOutcome
from streams.brokers.base import Broker
from streams.brokers.embedded import EmbeddedBroker

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[bool] | bool], *, timeout: float = 60, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for(check: Callable[[], T], *, timeout: float = 60, interval: float = 0.1, what: str = "condition") -> T:
    """The synchronous `eventually`, for tests driving a TestClient: poll `check` until it returns
    something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_topic(settings: Settings, broker: Broker, topic: str, *, timeout_s: float = 5) -> list[dict[str, Any]]:
    """Every JSON message on a topic so far (embedded: the retained log; Kafka: a fresh consumer from the start)."""
    if isinstance(broker, EmbeddedBroker):
        return [json.loads(m.value) for m in broker.retained[topic]]
    consumer = KafkaConsumer(settings.broker.topic_prefix + topic, bootstrap_servers=settings.broker.kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000), group_id=None)
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def unavailable(message: str) -> NoReturn:
    """Something a test needs is missing: skip on a developer machine, fail under
    `RAGLOOP_REQUIRE_SERVICES=1` (CI sets it), so a green CI run never hides an unrun test."""
    if os.environ.get("RAGLOOP_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_module(name: str) -> ModuleType:
    """`pytest.importorskip` that fails in CI instead of skipping silently."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        unavailable(f"Python module {name!r} is not installed ({error}); install the test extras: make setup")


def require_path(path: Path, what: str) -> Path:
    """A data folder outside the repository (e.g. ../shared/data): skip where it is absent, fail in CI."""
    if not path.exists():
        unavailable(f"{what} is not at {path}; it lives in the project's shared data folder (../shared/data)")
    return path


def outcome_of(request: ChatRequest, answer: str) -> TaskOutcome:
    """What an agent that answered `request` with `answer` (citing one passage) stores on its task."""
    response = ChatResponse(event_id=f"{request.task_id}.response", occurred_at=request.occurred_at, task_id=request.task_id,
                            conversation_id=request.conversation_id, question=request.messages[-1].content, answer=answer, model_version="v1",
                            citations=[Citation(document_id="ostra", chunk_id="ostra#0", score=0.5, text="The Ostra is 612 km long.")],
                            prompt=[ChatTurn(role="user", content=request.messages[-1].content)], timings_ms={"generation": 1.5},
                            usage={"completion_tokens": 2})
    return TaskOutcome(response=response, cited=["ostra#0"], route="retrieve", evidence="found", token_events=2)



@contextmanager
def serving(server: HTTPServer, scheme: str = "http") -> Iterator[str]:
    """Run a local test server on a thread for the block; yields its base URL, and shuts it down after."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
