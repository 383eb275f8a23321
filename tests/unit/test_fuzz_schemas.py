"""Property-based fuzzing of every event contract (issue #11, proof by fuzzing).

Three properties, for every ``Event`` subclass and ``DeadLetter``:
- whatever validates round-trips: ``model_validate_json(e.model_dump_json()) == e`` (a producer
  never emits bytes its own consumer refuses);
- arbitrary JSON values and arbitrary bytes raise nothing but ``ValidationError``;
- the consumer's validation step turns any bytes into a valid event or a dead letter, never an
  unhandled exception.

Inputs are near-valid objects (a valid example with some fields replaced by arbitrary JSON), so
the validators past the first type check are exercised too, not only "not an object".
Examples are bounded so the file runs in seconds.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pydantic import BaseModel, ValidationError

from schemas.database import Database
from schemas.events import EVENT_MODELS, DeadLetter, Event
from schemas.settings import Settings
from streams.brokers.base import RawMessage
from streams.consumer import EventConsumer, RetryPolicy
from streams.dead_letters import DeadLetterStore
from streams.topics import TOPICS

# Derandomised: the same examples every run (CI stays reproducible), none written to a .hypothesis folder.
BOUNDED = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
EXAMPLES = hsettings(max_examples=100, **BOUNDED)

# One valid example of each contract: the base that fields are mutated from.
VALID: dict[str, dict[str, Any]] = {
    "docs.ingest": {"document_id": "doc-1", "text": "hello", "access": ["team-a"], "metadata": {"k": 1}},
    "docs.delete": {"document_id": "doc-1"},
    "docs.progress": {"document_id": "doc-1", "stage": "indexed", "counts": {"chunks": 2}},
    "docs.indexed": {"document_id": "doc-1", "chunk_ids": ["doc-1#0"]},
    "chat.requests": {"messages": [{"role": "user", "content": "q"}], "options": {"k": 3}, "principals": ["alice"]},
    "chat.tokens": {"task_id": "t", "conversation_id": "c", "index": 0, "delta": "He"},
    "chat.responses": {"task_id": "t", "conversation_id": "c", "question": "q", "answer": "a", "model_version": "v1",
                       "citations": [{"document_id": "d", "chunk_id": "d#0", "score": 0.5, "text": "x"}], "timings_ms": {"total": 1.5}},
    "images.generate": {"task_id": "t", "prompt": "a cat"},
    "eval.results": {"task_id": "t", "model_version": "v1", "metrics": {"rouge": 0.5, "judge": None}},
    "feedback.events": {"task_id": "t", "rating": "up", "correction": "better"},
    "train.requests": {"model_family": "qwen", "reason": "enough corrections"},
    "model.updated": {"model_family": "qwen", "version": "v2", "adapter_path": None, "state": "candidate", "metrics": {"loss": 0.1}},
}
DEAD_LETTER = {"topic": "docs.ingest", "key": "doc-1", "consumer": "ingest", "reason": "boom", "error_type": "ValueError",
               "attempts": 1, "payload": "{}"}
MODELS: list[tuple[type[BaseModel], dict[str, Any]]] = [(EVENT_MODELS[name], base) for name, base in VALID.items()] + [(DeadLetter, DEAD_LETTER)]
IDS = [model.__name__ for model, _ in MODELS]

# JSON as a producer can write it: Python's json module also writes NaN and ±Infinity, and pydantic reads them.
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | st.sampled_from(
    ["", "doc-1", "user", "assistant", "indexed", "up", "candidate", "high", "a/b", "x" * 201, "2026-11-30T12:00:00Z", "\x00", "é",
     math.nan, math.inf, -math.inf, 0, -1, 2**63, 1e308])
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


Path = tuple[str | int, ...]


def leaves(value: Any, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every part of a JSON value with its path, containers included (so a whole dict can be replaced too)."""
    found: list[tuple[Path, Any]] = [(path, value)] if path else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += leaves(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += leaves(inner, (*path, index))
    return found


def replacement(old: Any) -> st.SearchStrategy[Any]:
    """Mostly a value of the same type (it reaches the validators behind the type check), else any JSON."""
    same_type = {float: st.floats() | st.sampled_from([math.nan, math.inf, -math.inf]), int: st.integers(),
                 str: st.text(max_size=40), bool: st.booleans()}.get(type(old))
    return (same_type | JSON) if same_type is not None else JSON


def mutations(model: type[BaseModel], base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The valid base with one to three of its parts replaced, dropped or added (unknown fields included)."""
    targets = leaves(base) + [((name,), None) for name in model.model_fields if name not in base] + [(("unknown_field",), None)]

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        payload = json.loads(json.dumps(base))
        for _ in range(draw(st.integers(1, 3))):
            path, old = draw(st.sampled_from(targets))
            drop = draw(st.integers(0, 5)) == 0
            _put(payload, path, None if drop else draw(replacement(old)), drop=drop)
        return payload

    return mutate()


def _put(payload: Any, path: Path, value: Any, *, drop: bool) -> None:
    """Set (or drop) ``payload[path]``; nothing when an earlier mutation already replaced the way there."""
    *way, last = path
    for step in way:
        if not _has(payload, step):
            return
        payload = payload[step]
    if isinstance(payload, dict) and isinstance(last, str):
        if drop:
            payload.pop(last, None)
        else:
            payload[last] = value
    elif _has(payload, last) and not drop:
        payload[last] = value


def _has(container: Any, step: str | int) -> bool:
    if isinstance(container, dict):
        return step in container
    return isinstance(container, list) and isinstance(step, int) and step < len(container)


def equal(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (a NaN metric that round-trips as NaN is fine)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def check_round_trip(model: type[BaseModel], raw: bytes) -> None:
    try:
        value = model.model_validate_json(raw)
    except ValidationError:
        return
    again = model.model_validate_json(value.model_dump_json())
    assert equal(again.model_dump(), value.model_dump()), f"{model.__name__} does not round-trip: {raw!r}"


@pytest.mark.parametrize(("model", "base"), MODELS, ids=IDS)
def test_every_contract_has_a_valid_base_example(model: type[BaseModel], base: dict[str, Any]) -> None:
    check_round_trip(model, json.dumps(base).encode())
    model.model_validate(base)  # the base itself is valid, so mutations start from a real event


@pytest.mark.parametrize(("model", "base"), MODELS, ids=IDS)
def test_near_valid_objects_validate_and_round_trip_or_raise_validation_error(model: type[BaseModel], base: dict[str, Any]) -> None:
    @EXAMPLES
    @given(mutations(model, base))
    def run(payload: dict[str, Any]) -> None:
        check_round_trip(model, json.dumps(payload).encode())
        try:
            model.model_validate(payload)  # the Python path (gateway, CLI) as well as the JSON path
        except ValidationError:
            pass

    run()


@pytest.mark.parametrize(("model", "base"), MODELS, ids=IDS)
def test_arbitrary_json_and_bytes_raise_only_validation_error(model: type[BaseModel], base: dict[str, Any]) -> None:
    @EXAMPLES
    @given(JSON.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
    def run(raw: bytes) -> None:
        check_round_trip(model, raw)

    run()


@dataclass
class RecordingBroker:
    """The broker at the edge of the consumer: only what it was asked to publish."""

    published: list[tuple[str, bytes, str | None]] = field(default_factory=list)

    async def publish(self, topic: str, value: bytes, key: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.published.append((topic, value, key))


async def _noop(_: Event) -> None:
    return None


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_the_consumer_turns_any_bytes_into_an_event_or_a_dead_letter(topic: str, settings: Settings) -> None:
    letters = DeadLetterStore(Database.from_settings(settings))
    consumer: EventConsumer[Event] = EventConsumer(TOPICS[topic], "fuzz", _noop)
    base = json.dumps(VALID["docs.ingest" if topic == "docs.ingest.large" else topic.removesuffix(".high")]).encode()
    model = TOPICS[topic].event

    @hsettings(max_examples=40, **BOUNDED)
    @given(st.binary(max_size=200) | mutations(model, json.loads(base)).map(lambda v: json.dumps(v).encode()),
           st.none() | st.text(max_size=20))
    def run(value: bytes, key: str | None) -> None:
        broker = RecordingBroker()
        event = asyncio.run(consumer._validate(RawMessage(topic, key, value), broker, letters, RetryPolicy(0, 0)))  # type: ignore[arg-type]
        if event is not None:
            assert isinstance(event, model) and not broker.published
            return
        [(dlq, letter, letter_key)] = broker.published
        assert dlq == f"{topic}.dlq" and letter_key == (key.replace("\x00", "\\x00") if key is not None else None)  # NUL is escaped for PostgreSQL
        record = DeadLetter.model_validate_json(letter)
        assert record.reason.startswith("schema validation failed") and record.error_type == "ValidationError"

    run()


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", ["model.updated", "chat.responses", "eval.results"])
def test_a_non_finite_number_is_refused_or_kept_as_unknown_never_written_as_an_unreadable_event(name: str, number: float) -> None:
    """JSON has no NaN: pydantic writes it as null, which a `float` field then refuses on the consumer's side."""
    payload = json.loads(json.dumps(VALID[name]))
    payload |= {"model.updated": {"metrics": {"loss": number}}, "chat.responses": {"timings_ms": {"total": number}},
                "eval.results": {"metrics": {"rouge": number}}}[name]
    check_round_trip(EVENT_MODELS[name], json.dumps(payload).encode())

