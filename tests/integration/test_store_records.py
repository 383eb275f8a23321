"""Store records the workers rely on, identical on SQLite and PostgreSQL: the large-lane
membership that keeps a document's events in order, batched document status updates, the
processed-event ledger written once per batch, and the feedback the trainer reads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from schemas.events import ChatRequest, ChatTurn, utcnow
from schemas.settings import Settings
from schemas.tables import FeedbackRecord, LargeLaneRecord
from streams.store import LANE_TOMBSTONE_TTL, Store, task_from_request
from streams.task_attempts import TaskAttempts


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, settings: Settings) -> Store:
    if request.param == "postgres":
        settings = settings.override(database_url=request.getfixturevalue("postgres_url"))
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


def test_lane_tombstones_older_than_the_retention_are_removed_when_another_event_leaves(store: Store, unique: str) -> None:
    old, new = f"old-{unique}", f"new-{unique}"
    for doc in (old, new):
        store.enter_large_lane(doc, "e1")
        store.leave_large_lane(doc, "e1")
    with store.session() as s:
        row = s.get(LargeLaneRecord, (old, "e1"))
        row.left_at = utcnow() - LANE_TOMBSTONE_TTL - timedelta(hours=1)
        s.add(row)
        s.commit()
    store.enter_large_lane(new, "e2")
    store.leave_large_lane(new, "e2")
    with store.session() as s:
        assert s.get(LargeLaneRecord, (old, "e1")) is None
        assert s.get(LargeLaneRecord, (new, "e1")) is not None  # a recent tombstone stays


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
    store.mark_processed_many(group, ["e1"])
    store.mark_processed_many(group, ["e1", "e2", "e3", "e2"])  # e1 raced in earlier; e2 twice in one batch
    store.mark_processed_many(group, [])
    assert store.processed_among(group, ["e1", "e2", "e3", "e4"]) == {"e1", "e2", "e3"}
    assert store.processed_among(f"other-{unique}", ["e1"]) == set()


def test_the_trainer_reads_corrections_oldest_first_and_undisputed_up_voted_tasks_latest_first(store: Store, unique: str) -> None:
    tenant, tasks = f"t-{unique}", []
    for n in range(5):
        request = ChatRequest(tenant=tenant, messages=[ChatTurn(role="user", content=f"question {n}")])
        store.create_task(task_from_request(request))
        tasks.append(request.task_id)
    votes = [(0, "up", None), (1, "down", f"fixed-{unique}"), (2, "up", None), (3, "up", f"better-{unique}"),
             (0, "up", None),  # task 0 up-voted again: listed once, by its latest up-vote
             (4, "up", None), (4, "down", None)]  # task 4 liked, then disliked: disputed
    for n, (task, rating, correction) in enumerate(votes):
        store.add_feedback(FeedbackRecord(id=f"fb-{unique}-{n}", task_id=tasks[task], tenant=tenant, rating=rating, correction=correction))
    corrections = [(f.task_id, f.correction) for f, _ in store.corrections_with_tasks() if f.tenant == tenant]
    assert corrections == [(tasks[1], f"fixed-{unique}"), (tasks[3], f"better-{unique}")]
    liked = [t.id for t in store.approved_tasks(limit=50) if t.tenant == tenant]
    assert liked == [tasks[0], tasks[2]]  # an up-vote with a correction is a correction, not an approval
    assert store.approved_tasks(limit=0) == []


def test_an_agent_that_lost_its_task_cannot_finish_it_and_a_finish_closes_the_attempt_with_it(store: Store) -> None:
    request = ChatRequest(messages=[ChatTurn(role="user", content="hello")])
    store.create_task(task_from_request(request))
    attempts = TaskAttempts(store)
    assert attempts.claim(request.task_id, "slow-agent", 0.0) == 1  # its lease lapses at once
    assert attempts.claim(request.task_id, "new-agent", 60.0) == 2  # and another agent takes the task over
    assert not attempts.finish(request.task_id, 1, "slow-agent", to="succeeded", result={"answer": "late"})
    assert store.get_task(request.task_id).status == "running"  # type: ignore[union-attr]
    assert attempts.finish(request.task_id, 2, "new-agent", to="succeeded", result={"answer": "hi"})
    task = store.get_task(request.task_id)
    assert task is not None and (task.status, task.result, task.lease_owner) == ("succeeded", {"answer": "hi"}, None)
    assert [(a.attempt, a.outcome, a.ended_at is not None) for a in attempts.of(request.task_id)][1] == (2, "succeeded", True)
