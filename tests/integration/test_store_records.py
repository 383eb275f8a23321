"""Store records the workers rely on, identical on SQLite and PostgreSQL: the large-lane
membership that keeps a document's events in order, batched document status updates, the
processed-event ledger written once per batch, the feedback the trainer reads, and the leases
of tasks and of their callback deliveries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from indexing.document_store import LANE_TOMBSTONE_TTL, DocumentStore
from schemas.database import Database
from schemas.events import ChatRequest, ChatTurn, utcnow
from schemas.settings import Settings
from schemas.tables import FeedbackRecord, LargeLaneRecord
from schemas.task_result import TaskOutcome
from streams.callback_deliveries import CallbackDeliveries
from streams.ledger import EventLedger
from streams.task_attempts import TaskAttempts
from streams.task_store import TaskStore, task_from_request
from tests.support import outcome_of
from trainers.feedback_store import FeedbackStore


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, settings: Settings) -> Database:
    if request.param == "postgres":
        settings = settings.override(database_url=request.getfixturevalue("postgres_url"))
    return Database.from_settings(settings)


@pytest.fixture
def documents(db: Database) -> DocumentStore:
    return DocumentStore(db)


def test_a_document_stays_on_the_large_lane_until_each_of_its_events_left(documents: DocumentStore, unique: str) -> None:
    doc, other = f"report-{unique}", f"note-{unique}"
    assert documents.enter_large_lane(doc, "e1") == "entered"
    assert documents.enter_large_lane(doc, "e1") == "waiting"  # a redelivered move is recorded once
    assert documents.enter_large_lane(doc, "e2") == "entered"
    assert documents.on_large_lane([doc, other]) == {doc}
    documents.leave_large_lane(doc, "e1")
    assert documents.on_large_lane([doc]) == {doc}
    documents.leave_large_lane(doc, "e2")
    documents.leave_large_lane(doc, "e2")  # a redelivered lane event leaves twice: harmless
    assert documents.on_large_lane([doc, other]) == set()
    assert documents.on_large_lane([]) == set()


def test_lane_tombstones_older_than_the_retention_are_removed_when_another_event_leaves(db: Database, documents: DocumentStore, unique: str) -> None:
    old, new = f"old-{unique}", f"new-{unique}"
    for doc in (old, new):
        documents.enter_large_lane(doc, "e1")
        documents.leave_large_lane(doc, "e1")
    with db.session() as s:
        row = s.get(LargeLaneRecord, (old, "e1"))
        row.left_at = utcnow() - LANE_TOMBSTONE_TTL - timedelta(hours=1)
        s.add(row)
        s.commit()
    documents.enter_large_lane(new, "e2")
    documents.leave_large_lane(new, "e2")
    with db.session() as s:
        assert s.get(LargeLaneRecord, (old, "e1")) is None
        assert s.get(LargeLaneRecord, (new, "e1")) is not None  # a recent tombstone stays


def test_a_move_redelivered_after_the_lane_finished_does_not_put_the_document_back(documents: DocumentStore, unique: str) -> None:
    doc = f"report-{unique}"
    documents.enter_large_lane(doc, "e1")
    documents.leave_large_lane(doc, "e1")
    assert documents.enter_large_lane(doc, "e1") == "done"  # before the lane's ledger write, too: no re-queue, no republish
    assert documents.on_large_lane([doc]) == set()
    assert documents.enter_large_lane(doc, "e3") == "entered"  # a new event of the same document still takes the lane
    assert documents.on_large_lane([doc]) == {doc}


def test_document_statuses_are_updated_in_one_batch(documents: DocumentStore, unique: str) -> None:
    a, b = f"a-{unique}", f"b-{unique}"
    documents.upsert_document(a, "t", title="A", status="queued")
    documents.upsert_documents([(a, "t", {"status": "indexed", "chunks": 2}), (b, "t", {"title": "B", "status": "indexing"})])
    first, second = documents.get_document(a), documents.get_document(b)
    assert (first.title, first.status, first.chunks) == ("A", "indexed", 2)
    assert (second.title, second.status, second.tenant) == ("B", "indexing", "t")


def test_a_batch_is_recorded_in_the_ledger_once_even_when_some_ids_are_already_there(db: Database, unique: str) -> None:
    group, ledger = f"group-{unique}", EventLedger(db)
    ledger.mark_processed_many(group, ["e1"])
    ledger.mark_processed_many(group, ["e1", "e2", "e3", "e2"])  # e1 raced in earlier; e2 twice in one batch
    ledger.mark_processed_many(group, [])
    assert ledger.processed_among(group, ["e1", "e2", "e3", "e4"]) == {"e1", "e2", "e3"}
    assert ledger.processed_among(f"other-{unique}", ["e1"]) == set()


def test_the_trainer_reads_corrections_oldest_first_and_undisputed_up_voted_tasks_latest_first(db: Database, unique: str) -> None:
    store, feedback = TaskStore(db), FeedbackStore(db)
    tenant, tasks = f"t-{unique}", []
    for n in range(5):
        request = ChatRequest(tenant=tenant, messages=[ChatTurn(role="user", content=f"question {n}")])
        store.create_task(task_from_request(request))
        tasks.append(request.task_id)
    votes = [(0, "up", None), (1, "down", f"fixed-{unique}"), (2, "up", None), (3, "up", f"better-{unique}"),
             (0, "up", None),  # task 0 up-voted again: listed once, by its latest up-vote
             (4, "up", None), (4, "down", None)]  # task 4 liked, then disliked: disputed
    for n, (task, rating, correction) in enumerate(votes):
        feedback.add_feedback(FeedbackRecord(id=f"fb-{unique}-{n}", task_id=tasks[task], tenant=tenant, rating=rating, correction=correction))
    corrections = [(f.task_id, f.correction) for f, _ in feedback.corrections_with_tasks() if f.tenant == tenant]
    assert corrections == [(tasks[1], f"fixed-{unique}"), (tasks[3], f"better-{unique}")]
    liked = [t.id for t in feedback.approved_tasks(limit=50) if t.tenant == tenant]
    assert liked == [tasks[0], tasks[2]]  # an up-vote with a correction is a correction, not an approval
    assert feedback.approved_tasks(limit=0) == []


def test_an_agent_that_lost_its_task_cannot_finish_it_and_a_finish_closes_the_attempt_with_it(db: Database) -> None:
    store, attempts = TaskStore(db), TaskAttempts(db)
    request = ChatRequest(messages=[ChatTurn(role="user", content="hello")])
    store.create_task(task_from_request(request))
    assert attempts.claim(request.task_id, "slow-agent", 0.0) == 1  # its lease lapses at once
    assert attempts.claim(request.task_id, "new-agent", 60.0) == 2  # and another agent takes the task over
    assert not attempts.finish(request.task_id, 1, "slow-agent", to="succeeded", result=outcome_of(request, "late"))
    assert store.get_task(request.task_id).status == "running"  # type: ignore[union-attr]
    assert attempts.finish(request.task_id, 2, "new-agent", to="succeeded", result=outcome_of(request, "hi"))
    task = store.get_task(request.task_id)
    assert task is not None and (task.status, task.result, task.lease_owner) == ("succeeded", outcome_of(request, "hi"), None)
    assert [(a.attempt, a.outcome, a.ended_at is not None) for a in attempts.of(request.task_id)][1] == (2, "succeeded", True)


def test_a_succeeded_task_reads_back_its_outcome_typed_with_the_response_it_published(db: Database) -> None:
    request = ChatRequest(messages=[ChatTurn(role="user", content="hello")])
    tasks, attempts = TaskStore(db), TaskAttempts(db)
    tasks.create_task(task_from_request(request))
    attempt = attempts.claim(request.task_id, "agent", 60.0)
    assert attempt is not None and attempts.finish(request.task_id, attempt, "agent", to="succeeded", result=outcome_of(request, "hi"))
    task = tasks.get_task(request.task_id)
    assert task is not None and isinstance(task.result, TaskOutcome)
    assert task.result.response == outcome_of(request, "hi").response  # the very event a redelivery re-publishes
    assert (task.result.answer, task.result.model_version, task.result.citations[0].document_id) == ("hi", "v1", "ostra")


def test_a_callback_senders_lease_is_the_deliverys_own_so_an_agents_lease_never_disturbs_it(db: Database) -> None:
    tasks, attempts, deliveries = TaskStore(db), TaskAttempts(db), CallbackDeliveries(db)
    request = ChatRequest(messages=[ChatTurn(role="user", content="hello")], callback_url="https://example.com/hook")
    tasks.create_task(task_from_request(request))
    task_id = request.task_id
    assert deliveries.get(task_id).status == "pending"  # type: ignore[union-attr]  — created with the task
    assert attempts.claim(task_id, "agent-1", 60.0) == 1
    assert not deliveries.claim_callback(task_id, "sender", 60.0)  # nothing to deliver before the task finishes
    assert tasks.transition_task(task_id, from_states=("running",), to="failed", error="gave up")
    assert deliveries.claim_callback(task_id, "sender", 60.0)
    assert not deliveries.claim_callback(task_id, "another-sender", 60.0)  # exactly one sender delivers
    # A dead letter replayed while the callback is on its way: the task is queued again and an agent takes it.
    assert tasks.transition_task(task_id, from_states=("failed",), to="queued", error=None, finished_at=None)
    assert attempts.claim(task_id, "agent-2", 60.0) == 2
    assert deliveries.record_callback_attempt(task_id, "sender", status="delivered")  # the sender still holds its delivery
    delivery, task = deliveries.get(task_id), tasks.get_task(task_id)
    assert delivery is not None and (delivery.status, delivery.attempts, delivery.lease_owner) == ("delivered", 1, None)
    assert task is not None and task.lease_owner == "agent-2"


def test_a_delivery_whose_sender_stopped_is_due_again_and_taken_over(db: Database) -> None:
    tasks, deliveries = TaskStore(db), CallbackDeliveries(db)
    request = ChatRequest(messages=[ChatTurn(role="user", content="hello")], callback_url="https://example.com/hook")
    tasks.create_task(task_from_request(request))
    tasks.transition_task(request.task_id, from_states=("queued",), to="cancelled")
    assert request.task_id in {t.id for t in deliveries.callbacks_due(limit=10_000)}
    assert deliveries.claim_callback(request.task_id, "dead-sender", 0.0)  # its lease lapses at once
    assert request.task_id in {t.id for t in deliveries.callbacks_due(limit=10_000)}
    assert deliveries.claim_callback(request.task_id, "sender", 60.0)
    assert request.task_id not in {t.id for t in deliveries.callbacks_due(limit=10_000)}
    assert not deliveries.record_callback_attempt(request.task_id, "dead-sender", status="delivered")  # it lost the delivery
    assert deliveries.record_callback_attempt(request.task_id, "sender", status="delivered")
