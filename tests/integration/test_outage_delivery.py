"""A dependency that is down is waited out, never turned into a dead letter (tests/faults found both):

- a handler that fails because the database is down is retried past `max_retries` and succeeds once
  it is back, and the consumer's own bookkeeping (the event ledger, the letter) outlasts an outage
  instead of raising (which would redeliver the message at once into the same outage);
- a worker restarted while the search service is down waits for it at warm-up instead of exiting;
- an ingest attempt that marked its document `indexing` after a delete had ended, then failed
  (the database went down before it finished), leaves the document `deleted` once retried.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionError as SearchConnectionError
from sqlalchemy.exc import OperationalError

from indexing.document_store import DeleteMark
from schemas.database import Database
from schemas.events import DocumentDelete, DocumentIngest
from schemas.settings import Settings
from streams.brokers import make_broker
from streams.consumer import EventConsumer, RetryPolicy
from streams.dead_letters import DeadLetterStore
from streams.ledger import EventLedger
from streams.publisher import Publisher
from streams.runtime import Runtime
from streams.topics import TOPICS
from streams.workers.ingest import consumers
from tests.support import eventually

TEXT = "The Varna lighthouse has guided ships into the bay since 1857.\n\nIts lamp is visible for forty kilometres."


def database_down() -> OperationalError:
    return OperationalError("INSERT …", {}, ConnectionRefusedError("connection to server at 127.0.0.1 failed: Connection refused"))


class Flaky:
    """Calls `real` after raising `database_down()` the first `failures` times."""

    def __init__(self, real: Callable[..., Any], failures: int) -> None:
        self.real, self.failures, self.calls = real, failures, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise database_down()
        return self.real(*args, **kwargs)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """Patched onto a class, it is called as the method it replaces (bound to the instance)."""
        return self if instance is None else partial(self, instance)


async def test_a_database_outage_is_waited_out_not_dead_lettered(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    db, broker = Database.from_settings(settings), make_broker(settings)
    effects: Counter[str] = Counter()
    dead: list[str] = []
    failures_left = {"doc": 6}  # twice max_retries

    async def handle(event: DocumentIngest) -> None:
        if failures_left[event.document_id] > 0:
            failures_left[event.document_id] -= 1
            raise database_down()
        effects[event.document_id] += 1

    async def on_dead_letter(event: DocumentIngest, reason: str) -> None:
        dead.append(event.document_id)

    # The ledger write after the effect fails twice too: the message must still be marked handled, once.
    monkeypatch.setattr(EventLedger, "mark_processed_many", Flaky(EventLedger.mark_processed_many, 2))
    EventConsumer(TOPICS["docs.ingest"], "test.outage", handle, on_dead_letter=on_dead_letter).bind(
        broker, db, RetryPolicy(max_retries=3, backoff_s=0.01))
    await broker.start()
    try:
        event = DocumentIngest(document_id="doc", text="x")
        await Publisher(broker).publish(event)
        await eventually(lambda: effects["doc"] == 1, what="the effect once the database is back")
        await eventually(lambda: EventLedger(db).processed_among("test.outage", [event.event_id]) == {event.event_id},
                         what="the event recorded as handled")
    finally:
        await broker.stop()
    assert dead == [] and effects["doc"] == 1


async def test_a_dead_letter_is_recorded_once_the_database_is_back(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work that fails for its own reasons is dead-lettered even if the database is down right then:
    the letter and `on_dead_letter` wait for it rather than give up after a few tries."""
    db, broker = Database.from_settings(settings), make_broker(settings)
    dead: list[str] = []
    tries = 0

    async def handle(event: DocumentIngest) -> None:
        nonlocal tries
        tries += 1
        raise RuntimeError("this document is broken")

    async def on_dead_letter(event: DocumentIngest, reason: str) -> None:
        dead.append(reason)

    monkeypatch.setattr(DeadLetterStore, "record", Flaky(DeadLetterStore.record, 6))
    EventConsumer(TOPICS["docs.ingest"], "test.outage", handle, on_dead_letter=on_dead_letter).bind(
        broker, db, RetryPolicy(max_retries=2, backoff_s=0.01))
    await broker.start()
    try:
        await Publisher(broker).publish(DocumentIngest(document_id="broken", text="x"))
        await eventually(lambda: len(dead) == 1, what="the dead letter once the database is back")
    finally:
        await broker.stop()
    assert "this document is broken" in dead[0] and tries == 3  # 1 try + 2 retries: the message was not redelivered
    assert [letter.key for letter in DeadLetterStore(db).list(topic="docs.ingest")] == ["broken"]


async def test_a_worker_started_while_the_search_service_is_down_waits_for_it(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import indexing.backends.factory as factory

    opened = Flaky(factory.open_backend, 0)

    def refused(*args: Any, **kwargs: Any) -> Any:
        opened.calls += 1
        if opened.calls <= 2:  # what OpenSearchBackend._ensure_index raises while the node is down
            raise SearchConnectionError("N/A", "ConnectionRefusedError(111, 'Connection refused')", ConnectionRefusedError(111))
        return opened.real(*args, **kwargs)

    monkeypatch.setattr(factory, "open_backend", refused)
    monkeypatch.setattr("streams.patience.FIRST_DELAY_S", 0.01)
    runtime = Runtime(settings, ["ingest"])
    await runtime.start()
    try:
        assert opened.calls == 3 and "backend" in runtime.services.__dict__
    finally:
        await runtime.stop()


async def test_an_ingest_that_marked_its_document_after_the_delete_then_failed_leaves_it_deleted(settings: Settings) -> None:
    runtime = Runtime(settings, [])
    by_topic = {c.topic.name: c for c in consumers(runtime.services, runtime.publisher)}
    ingest, delete = by_topic["docs.ingest"].handle, by_topic["docs.delete"].handle
    post = DocumentIngest(tenant="acme", document_id="d-outage", title="Varna", text=TEXT)
    gone = DocumentDelete(tenant="acme", document_id="d-outage", occurred_at=post.occurred_at + timedelta(milliseconds=5))
    store = runtime.stores.documents
    read_marks, finish = store.delete_marks, store.finish_indexing
    loop = asyncio.get_running_loop()

    async def delete_now() -> None:
        await delete(gone)

    def read_then_delete(document_ids: Iterable[str]) -> dict[str, DeleteMark]:
        marks = read_marks(document_ids)  # the ingest reads no delete; the delete then runs whole
        store.delete_marks = read_marks  # type: ignore[method-assign]
        asyncio.run_coroutine_threadsafe(delete_now(), loop).result()
        return marks

    store.delete_marks = read_then_delete  # type: ignore[method-assign]
    store.finish_indexing = Flaky(finish, 1)  # type: ignore[method-assign]  # the database goes down before it finishes
    with pytest.raises(OperationalError):
        await ingest(post)
    assert store.get_document("d-outage").status == "indexing"  # type: ignore[union-attr]
    await ingest(post)  # the retry: the delete beat it, so it is skipped
    assert store.get_document("d-outage").status == "deleted"  # type: ignore[union-attr]
    hits = runtime.services.pipeline.backend.search_bm25(tenant="acme", text="Varna lighthouse lamp", k=20)
    assert not [h for h in hits if h.chunk.document_id == "d-outage"]
