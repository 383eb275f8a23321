"""Event contracts: round-trips keep every field; bad payloads are rejected naming the field."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas.events import EVENT_MODELS, ChatRequest, DocumentIngest, FeedbackEvent, ModelUpdated
from schemas.settings import Settings
from streams.topics import TOPICS, all_topic_names

SAMPLES = {
    "docs.ingest": {"document_id": "doc-1", "title": "T", "text": "body", "metadata": {"k": 1}, "access": ["team-a"]},
    "docs.delete": {"document_id": "doc-1"},
    "docs.progress": {"document_id": "doc-1", "stage": "indexed", "counts": {"chunks": 3}},
    "docs.indexed": {"document_id": "doc-1", "chunk_ids": ["a", "b"]},
    "chat.requests": {"messages": [{"role": "user", "content": "hi"}], "options": {"retrieval": False}},
    "chat.tokens": {"task_id": "t1", "conversation_id": "c1", "index": 0, "delta": "He"},
    "chat.responses": {"task_id": "t1", "conversation_id": "c1", "question": "q", "answer": "a", "model_version": "m@base",
                       "citations": [{"document_id": "d", "chunk_id": "c", "score": 0.5, "text": "x"}]},
    "images.generate": {"task_id": "t1", "prompt": "a cat"},
    "eval.results": {"task_id": "t1", "model_version": "m", "metrics": {"rouge_l": 0.5, "token_f1": None}},
    "feedback.events": {"task_id": "t1", "rating": "down", "correction": "Paris"},
    "train.requests": {"model_family": "m", "reason": "threshold"},
    "model.updated": {"model_family": "m", "version": "m-lora-1", "adapter_path": "/a", "state": "active"},
}


@pytest.mark.parametrize("topic", sorted(EVENT_MODELS))
def test_every_event_round_trips_through_json(topic: str) -> None:
    model = EVENT_MODELS[topic]
    event = model.model_validate(SAMPLES[topic])
    again = model.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.type == topic and again.schema_version == 1 and again.event_id


def test_every_topic_has_a_dead_letter_twin() -> None:
    names = all_topic_names()
    assert all(f"{name}.dlq" in names for name in TOPICS)


def test_unknown_fields_are_rejected_so_typos_reach_the_dlq() -> None:
    with pytest.raises(ValidationError, match="titel"):
        DocumentIngest.model_validate({"document_id": "d", "text": "x", "titel": "typo"})


def test_missing_required_field_is_named() -> None:
    with pytest.raises(ValidationError) as error:
        DocumentIngest.model_validate({"text": "body"})
    assert error.value.errors()[0]["loc"] == ("document_id",)


def test_document_needs_exactly_one_body() -> None:
    with pytest.raises(ValidationError, match="exactly one of text, url or content_b64"):
        DocumentIngest.model_validate({"document_id": "d"})
    with pytest.raises(ValidationError, match=r"got \['text', 'url'\]"):
        DocumentIngest.model_validate({"document_id": "d", "text": "x", "url": "https://example.org/a"})


def test_chat_request_must_end_with_a_user_question() -> None:
    with pytest.raises(ValidationError, match="last message must have role 'user'"):
        ChatRequest.model_validate({"messages": [{"role": "assistant", "content": "hello"}]})


def test_newer_schema_version_is_refused_not_misread() -> None:
    with pytest.raises(ValidationError, match="newer than supported"):
        FeedbackEvent.model_validate({"task_id": "t", "rating": "up", "schema_version": 2})


def test_rating_must_be_up_or_down() -> None:
    with pytest.raises(ValidationError, match="rating"):
        FeedbackEvent.model_validate({"task_id": "t", "rating": "meh"})


def test_model_state_is_a_closed_set() -> None:
    with pytest.raises(ValidationError, match="state"):
        ModelUpdated.model_validate({"model_family": "m", "version": "v", "adapter_path": None, "state": "live"})


def test_partition_keys_keep_related_events_in_order() -> None:
    request = ChatRequest.model_validate({"conversation_id": "conv-7", "messages": [{"role": "user", "content": "q"}]})
    assert request.key() == "conv-7"
    assert DocumentIngest(document_id="doc-9", text="x").key() == "doc-9"


def test_envelope_is_present_in_the_wire_format() -> None:
    wire = json.loads(FeedbackEvent(task_id="t", rating="up").model_dump_json())
    assert {"event_id", "type", "schema_version", "tenant", "occurred_at", "trace"} <= wire.keys()


def test_settings_reject_unknown_broker_scheme() -> None:
    with pytest.raises(ValidationError, match="RAGLOOP_BROKER_URL"):
        Settings(broker={"url": "amqp://localhost"})


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RAGLOOP_HOME", str(tmp_path))
    monkeypatch.setenv("RAGLOOP_BROKER_URL", "kafka://a:1,b:2")
    monkeypatch.setenv("RAGLOOP_DATABASE_URL", "postgresql://u:p@h/db")
    monkeypatch.setenv("RAGLOOP_FEEDBACK_MIN_CORRECTIONS", "5")
    settings = Settings()
    assert settings.broker.kafka_bootstrap == ["a:1", "b:2"]
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:p@h/db"
    assert settings.training.feedback_min_corrections == 5


def test_default_database_is_a_sqlite_file_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("RAGLOOP_DATABASE_URL", raising=False)
    assert Settings(home=tmp_path).sqlalchemy_url == f"sqlite:///{tmp_path / 'ragloop.db'}"
