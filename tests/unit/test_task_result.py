"""A succeeded task's stored outcome: each fact once, read typed, and shown to clients as it always was."""

from __future__ import annotations

from typing import Any

from schemas.events import ChatResponse, ChatTurn, Citation
from schemas.task_result import TaskOutcome
from streams.task_view import TaskResult

RESPONSE = ChatResponse(task_id="t1", conversation_id="c1", question="How long is the Ostra?", answer="612 km [1].", model_version="m@base",
                        citations=[Citation(document_id="ostra", chunk_id="ostra#0", title="Ostra", score=0.7, text="The Ostra is 612 km long.")],
                        prompt=[ChatTurn(role="user", content="How long is the Ostra?")], timings_ms={"retrieval": 3.0, "generation": 40.5},
                        usage={"prompt_tokens": 90, "completion_tokens": 6})
OUTCOME = TaskOutcome(response=RESPONSE, cited=["ostra#0"], route="retrieve", evidence="found", token_events=6)


def stored(outcome: TaskOutcome) -> dict[str, Any]:
    return outcome.model_dump(mode="json")


def test_an_outcome_keeps_the_answer_once_inside_the_response_it_published() -> None:
    assert set(stored(OUTCOME)) == {"response", "cited", "route", "evidence", "token_events"}
    assert TaskOutcome.model_validate(stored(OUTCOME)) == OUTCOME
    assert (OUTCOME.answer, OUTCOME.model_version, OUTCOME.citations) == (RESPONSE.answer, RESPONSE.model_version, RESPONSE.citations)


def test_a_row_stored_with_copies_beside_the_response_reads_the_same() -> None:
    """Rows written before the outcome had a model repeated each response field at the top level."""
    row = {**OUTCOME.summary(), "response": RESPONSE.model_dump(mode="json")}
    assert TaskOutcome.model_validate(row) == OUTCOME


def test_the_event_stream_ends_with_every_fact_but_the_prompt() -> None:
    assert OUTCOME.summary() == {
        "answer": "612 km [1].", "model_version": "m@base", "cited": ["ostra#0"], "route": "retrieve", "evidence": "found",
        "citations": [{"document_id": "ostra", "chunk_id": "ostra#0", "title": "Ostra", "score": 0.7, "text": "The Ostra is 612 km long."}],
        "timings_ms": {"retrieval": 3.0, "generation": 40.5}, "usage": {"prompt_tokens": 90, "completion_tokens": 6}, "token_events": 6}


def test_the_api_shows_the_answer_its_sources_and_cost() -> None:
    assert TaskResult.of(OUTCOME).model_dump(mode="json") == {
        "answer": "612 km [1].", "model_version": "m@base",
        "citations": [{"document_id": "ostra", "chunk_id": "ostra#0", "title": "Ostra", "score": 0.7, "text": "The Ostra is 612 km long."}],
        "timings_ms": {"retrieval": 3.0, "generation": 40.5}, "usage": {"prompt_tokens": 90, "completion_tokens": 6}}
