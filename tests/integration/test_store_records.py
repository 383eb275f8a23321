"""Store records the ingest worker relies on, identical on SQLite and PostgreSQL: the large-lane
membership that keeps a document's events in order, batched document status updates, and the
processed-event ledger written once per batch."""

from __future__ import annotations

import pytest

from schemas.settings import Settings
from streams.store import Store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, settings: Settings) -> Store:
    if request.param == "postgres":
        settings = settings.model_copy(update={"database_url": request.getfixturevalue("postgres_url")})
    return Store.from_settings(settings)


def test_a_document_stays_on_the_large_lane_until_each_of_its_events_left(store: Store, unique: str) -> None:
    doc, other = f"report-{unique}", f"note-{unique}"
    assert store.enter_large_lane(doc, "e1") == "entered"
    assert store.enter_large_lane(doc, "e1") == "waiting"  # a redelivered move is recorded once
    assert store.enter_large_lane(doc, "e2") == "entered"
    assert store.on_large_lane([doc, other]) == {doc}
    store.leave_large_lane(doc, "e1")
    assert store.on_large_lane([doc]) == {doc}
    store.leave_large_lane(doc, "e2")
    store.leave_large_lane(doc, "e2")  # a redelivered lane event leaves twice: harmless
    assert store.on_large_lane([doc, other]) == set()
    assert store.on_large_lane([]) == set()


def test_a_move_redelivered_after_the_lane_finished_does_not_put_the_document_back(store: Store, unique: str) -> None:
    doc = f"report-{unique}"
    store.enter_large_lane(doc, "e1")
    store.leave_large_lane(doc, "e1")
    assert store.enter_large_lane(doc, "e1") == "done"  # before the lane's ledger write, too: no re-queue, no republish
    assert store.on_large_lane([doc]) == set()
    assert store.enter_large_lane(doc, "e3") == "entered"  # a new event of the same document still takes the lane
    assert store.on_large_lane([doc]) == {doc}


def test_document_statuses_are_updated_in_one_batch(store: Store, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    store.upsert_document(a, "t", title="A", status="queued")
    store.upsert_documents([(a, "t", {"status": "indexed", "chunks": 2}), (b, "t", {"title": "B", "status": "indexing"})])
    first, second = store.get_document(a), store.get_document(b)
    assert (first.title, first.status, first.chunks) == ("A", "indexed", 2)
    assert (second.title, second.status, second.tenant) == ("B", "indexing", "t")


def test_a_batch_is_recorded_in_the_ledger_once_even_when_some_ids_are_already_there(store: Store, unique: str) -> None:
    group = f"group-{unique}"
    store.mark_processed(group, "e1")
    store.mark_processed_many(group, ["e1", "e2", "e3", "e2"])  # e1 raced in earlier; e2 twice in one batch
    store.mark_processed_many(group, [])
    assert store.processed_among(group, ["e1", "e2", "e3", "e4"]) == {"e1", "e2", "e3"}
    assert store.processed_among(f"other-{unique}", ["e1"]) == set()
