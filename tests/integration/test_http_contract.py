"""The README's HTTP promises that need workers behind the gateway: what a field of a request does once
the ingest, feedback and agent roles have acted on it. Each test drives the real app over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr
from sqlmodel import select

from schemas.events import principals_fingerprint
from schemas.settings import Settings
from schemas.tables import FeedbackRecord
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime
from streams.signing import RAGLOOP_V2
from tests.support import read_topic, wait_for

OSTRA = "The Ostra river flows 612 kilometres from the Vel mountains to the Northern Sea."
QUESTION = "How long is the Ostra river?"


@contextmanager
def serving(settings: Settings, roles: Sequence[str]) -> Iterator[tuple[httpx.Client, Runtime, str]]:
    runtime = Runtime(settings, roles)
    with serve_in_thread(create_app(runtime)) as url, httpx.Client(base_url=url, timeout=300) as client:
        yield client, runtime, url


def ingest(client: httpx.Client, document_id: str, **fields: Any) -> None:
    """Add a document and wait until the ingest role has indexed it."""
    reply = client.post("/v1/documents", json={"id": document_id, "title": "Ostra", "text": OSTRA, **fields})
    assert reply.status_code == 202, reply.text
    wait_for(lambda: client.get(f"/v1/documents/{document_id}").json()["status"] == "indexed", timeout=120, what=f"{document_id} to be indexed")


def ask(client: httpx.Client, tenant: str, **fields: Any) -> dict[str, Any]:
    """A finished `/v1/chat` task (`?wait=true` waits on the task server-side)."""
    reply = client.post("/v1/chat", params={"wait": "true"}, json={"messages": [{"role": "user", "content": QUESTION}], "tenant": tenant, **fields})
    assert reply.status_code == 200 and reply.json()["status"] == "succeeded", reply.text
    return reply.json()


def cited(task: dict[str, Any]) -> list[str]:
    return [citation["document_id"] for citation in task["result"]["citations"]]


@pytest.fixture(scope="module")
def answering(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """One gateway with the ingest and agent roles for the tests that generate (the model loads once); short answers."""
    home: Path = tmp_path_factory.mktemp("answering") / "home"
    settings = Settings(home=home, broker={"url": "memory://"}, search={"url": "embedded://"}, llm={"max_new_tokens": 4})
    with serving(settings, ["ingest", "agent"]) as (client, _, url):
        yield client, url


# --- documents: access and metadata -------------------------------------------------------------

def test_document_access_and_metadata_are_stored_on_its_chunks(settings: Settings, unique: str) -> None:
    """`access` and `metadata` sent over HTTP reach every indexed chunk, and retrieval (what the agent searches
    with) returns the document only to a principal on its access list; a request without principals sees none."""
    tenant = f"t{unique}"
    with serving(settings, ["ingest"]) as (client, runtime, _):
        ingest(client, "ostra", tenant=tenant, access=["team-x"], metadata={"department": "geography", "year": 2024})
        retrieve = runtime.services.retriever.retrieve
        hits = retrieve(QUESTION, tenant=tenant, k=5, principals=["team-x"])
        assert {hit.chunk.document_id for hit in hits} == {"ostra"}
        assert [hit.chunk.access for hit in hits] == [["team-x"]] * len(hits)
        sent = {"department": "geography", "year": 2024}
        assert [{key: hit.chunk.metadata.get(key) for key in sent} for hit in hits] == [sent] * len(hits)
        assert retrieve(QUESTION, tenant=tenant, k=5, principals=["team-y"]) == []
        assert retrieve(QUESTION, tenant=tenant, k=5) == []


@pytest.mark.slow
def test_a_restricted_document_is_cited_only_for_a_principal_on_its_access_list(answering: tuple[httpx.Client, str], unique: str) -> None:
    client, _ = answering
    tenant = f"t{unique}"
    ingest(client, f"restricted-{unique}", tenant=tenant, access=["team-x"])
    assert cited(ask(client, tenant, principals=["team-y"])) == []
    assert cited(ask(client, tenant, principals=["team-x"])) == [f"restricted-{unique}"]


# --- chat: the retrieval switch ------------------------------------------------------------------

@pytest.mark.slow
def test_chat_with_retrieval_off_answers_without_searching(answering: tuple[httpx.Client, str], unique: str) -> None:
    """`retrieval: false` skips the search: no retrieval step is timed and nothing is cited, where the same
    question with retrieval on (the default) searches and cites the tenant's document."""
    client, _ = answering
    tenant = f"t{unique}"
    ingest(client, f"ostra-{unique}", tenant=tenant)
    searched, unsearched = ask(client, tenant), ask(client, tenant, retrieval=False)
    assert "retrieval" in searched["result"]["timings_ms"] and cited(searched) == [f"ostra-{unique}"]
    assert "retrieval" not in unsearched["result"]["timings_ms"] and cited(unsearched) == []


@pytest.mark.slow
def test_openai_extra_body_retrieval_off_answers_without_searching(answering: tuple[httpx.Client, str], unique: str) -> None:
    """The same switch through an OpenAI client's `extra_body`; the completion id names the task to read back."""
    client, url = answering
    ingest(client, f"ostra-{unique}")  # auth is off: completions act for the default tenant
    openai_client = openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed-in-embedded-mode", max_retries=0)

    def task_of(**extra: Any) -> dict[str, Any]:
        completion = openai_client.chat.completions.create(model="ragloop", messages=[{"role": "user", "content": QUESTION}], **extra)
        return client.get(f"/v1/tasks/{completion.id.removeprefix('chatcmpl-')}").json()

    searched, unsearched = task_of(), task_of(extra_body={"retrieval": False})
    assert "retrieval" in searched["result"]["timings_ms"] and f"ostra-{unique}" in cited(searched)
    assert "retrieval" not in unsearched["result"]["timings_ms"] and cited(unsearched) == []


# --- feedback: the comment -----------------------------------------------------------------------

def test_feedback_comment_travels_on_feedback_events_and_is_stored(settings: Settings) -> None:
    """The optional `comment` is carried on `feedback.events` (ARCHITECTURE.md) and kept on the feedback row."""
    with serving(settings, ["feedback"]) as (client, runtime, _):
        task_id = client.post("/v1/chat", json={"messages": [{"role": "user", "content": QUESTION}]}).json()["task_id"]
        reply = client.post("/v1/feedback", json={"task_id": task_id, "rating": "down", "comment": "the length is in miles"})
        assert reply.status_code == 202, reply.text

        def stored() -> list[FeedbackRecord]:
            with runtime.stores.db.session() as session:
                return list(session.exec(select(FeedbackRecord).where(FeedbackRecord.task_id == task_id)).all())

        rows = wait_for(stored, timeout=120, what="the feedback worker to store the feedback")
        assert [(row.rating, row.comment) for row in rows] == [("down", "the length is in miles")]
        events = read_topic(settings, runtime.broker, "feedback.events")
        assert [(event["task_id"], event["comment"]) for event in events] == [(task_id, "the length is in miles")]


# --- idempotency through a signed webhook --------------------------------------------------------

def test_a_webhook_delivery_id_cannot_spell_another_callers_scoped_key(settings: Settings) -> None:
    """A webhook delivery id is the task's idempotency key, scoped like any other by the principals asking (after a `#`).
    A delivery id spelled as another caller's scoped key would find that caller's task: it is refused with a 422."""
    signed = settings.override(webhook_keys=SecretStr("hr=whsec-hr=default|alice,plain=whsec=default"))

    def deliver(client: httpx.Client, payload: dict[str, Any], delivery: str, key: tuple[str, str]) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Ragloop-Key-Id": key[0], **RAGLOOP_V2.sign(key[1], body, delivery=delivery)}
        return client.post("/v1/webhooks/generic", content=body, headers=headers)

    with serving(signed, []) as (client, runtime, _):
        first = deliver(client, {"text": QUESTION}, "d-1", ("hr", "whsec-hr"))
        assert first.status_code == 202, first.text
        foreign = deliver(client, {"text": QUESTION}, f"d-1#{principals_fingerprint(['alice'])}", ("plain", "whsec"))
        assert foreign.status_code == 422 and "without `#`" in foreign.json()["detail"]
        assert runtime.stores.tasks.count_queued() == 1
