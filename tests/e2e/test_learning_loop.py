"""The learning loop end to end, in embedded mode and on Kafka + OpenSearch + PostgreSQL with one
process per role, through the public HTTP API only:

- teach → canary → promote: tenant A corrects a few invented facts; the policy (a YAML with a low
  `min_corrections` and a small canary) retrains A's adapter, which serves a canary share of A's
  conversations while simulated users rate its answers, then all of A's traffic; A's answers hold
  the facts. The tenant wall: tenant B asks the same questions afterwards and is answered by its
  own line (the base model), never with A's facts nor by A's version.
- poison → canary → rollback: tenant P "corrects" questions the base model answered right with
  wrong answers; the corrections-only gate accepts the adapter that learned them, the canary's
  simulated users (references sent, wrong answers down-voted) expose it, and the canary judge rolls
  it back on its own, with the reason and numbers recorded.
- feedback on an unknown or another tenant's task: 404.
- the loop's plumbing on the way (once a test per mode, not a deployment of its own): an ingested
  document is cited, and the eval worker scores every answer and every correction of both tenants
  (on `eval.results` on Kafka; by /metrics and its stored records in the one-process mode).

Small numbers so each test runs in minutes on CPU (3 facts, a canary of 4 samples per side). The
numbers the issue targets (20 facts, speed, requests to rollback) are benchmarks/learning_loop.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.settings import Settings
from tests.e2e.deployment import Cluster, Deployment, deployment
from tests.e2e.learning import (
    FACTS,
    Question,
    TenantClient,
    canary_of,
    contains_any,
    drive_canary,
    fact_questions,
    first_failed_run,
    poison_pairs,
    policy_yaml,
    squad_sample,
)
from tests.e2e.loop import PARAGRAPHS, Asked, Unscored, unscored_on_topic, unscored_per_metrics_and_store
from tests.support import require_path

pytestmark = pytest.mark.slow

SQUAD = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad-mini"
KEYS = "key-a=tenant-a,key-b=tenant-b,key-p=tenant-p"
TAUGHT = 3  # facts taught in the test (the benchmark teaches 20)
CANARY = {"canary_share": 0.5, "canary_min_samples": 4, "canary_min_samples_to_abort": 3}
RETRAIN_TIMEOUT = 900.0  # a retrain measured 281-417 s under load (load average 4-10) on the 2-core box
SCORED_TIMEOUT = 180.0
CANARY_TIMEOUT = 600.0


CLUSTER = pytest.param("kafka-opensearch-postgres", marks=[pytest.mark.kafka, pytest.mark.opensearch, pytest.mark.postgres])


@pytest.fixture(params=["embedded", CLUSTER])
def system(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Deployment]:
    """ragloop in either mode, learning under a policy of TAUGHT corrections and a small canary."""
    policy = policy_yaml(tmp_path / "policy.yaml", min_corrections=TAUGHT, **CANARY)
    env = {"RAGLOOP_TRAINING_POLICY": str(policy), "RAGLOOP_FEEDBACK_MIN_CORRECTIONS": str(TAUGHT), "RAGLOOP_API_KEYS": KEYS,
           "RAGLOOP_MAX_NEW_TOKENS": "40", "RAGLOOP_WORKER_RETRY_BACKOFF_S": "0.2"}
    cluster = None
    if request.param != "embedded":
        cluster = Cluster(request.getfixturevalue("kafka_url"), request.getfixturevalue("opensearch_url"),
                          request.getfixturevalue("postgres_url"), unique)
    with deployment(tmp_path, env, cluster=cluster) as dep:
        yield dep


def unscored_check(system: Deployment) -> Unscored:
    if system.database_url is None:
        return unscored_per_metrics_and_store(system.base_url, system.home)
    return unscored_on_topic(Settings(broker={"url": system.broker_url, "topic_prefix": system.topic_prefix}))


def wait_scored(system: Deployment, asked: Asked) -> None:
    """Every answer so far has its eval result, and every correction its re-score."""
    unscored, missing = unscored_check(system), []

    def all_scored() -> bool:
        missing[:] = unscored(asked)
        return not missing

    try:
        system.procs.wait_until(all_scored, timeout=SCORED_TIMEOUT, what="eval.results for every answer and correction")
    except AssertionError as error:
        raise AssertionError(f"not scored: {missing}\n{error}") from None


def wait_for_canary(dep: Deployment, client: TenantClient, tenant: str) -> str:
    """The tenant's retrained adapter, once the gate has made it a canary (a failed or rejected run fails at once)."""
    found: dict[str, str] = {}

    def gated() -> bool:
        run = first_failed_run(client)
        assert run is None, f"the training run did not reach the canary: {run}"
        canary = canary_of(client, tenant)
        if canary:
            found["version"] = canary["version"]
        return bool(found)

    dep.procs.wait_until(gated, timeout=RETRAIN_TIMEOUT, what=f"{tenant}'s retrained adapter to become a canary", interval=2)
    return found["version"]


@pytest.mark.timeout(2400)
def test_teach_canary_promote_and_the_tenant_wall(system: Deployment) -> None:
    a, b = TenantClient(system.base_url, "key-a"), TenantClient(system.base_url, "key-b")
    docs = {doc_id: f"{title}\n{text}" for doc_id, (title, text) in PARAGRAPHS.items()}
    for client in (a, b):
        client.ingest(docs)
    system.procs.wait_until(lambda: a.indexed(docs) and b.indexed(docs), timeout=300, what="documents indexed for both tenants")
    base = a.serving()
    assert base.endswith("@base") and b.serving() == base
    cited = a.ask(Question(id="river", text="How long is the Ostra river?", accepted=("612",)))
    assert cited.citations and cited.citations[0]["document_id"] == f"{a.doc_prefix}river", cited.citations
    assert {"document_id", "chunk_id", "text"} <= cited.citations[0].keys() and "612" in cited.citations[0]["text"]

    facts = fact_questions(FACTS[:TAUGHT])
    corrections: dict[str, str] = {}
    for question in facts:
        answer = a.ask(question)
        assert not answer.right, f"the base model already knows {question.text!r}: {answer.text!r}"
        corrections[answer.task_id] = a.correct(answer.task_id, question.reference or "")
    version = wait_for_canary(system, a, "tenant-a")
    assert version.startswith(base.split("@")[0] + "@lora-"), version
    assert b.serving() == base and version not in {m["version"] for m in b.models()}, "A's canary is visible to B"

    state = drive_canary(a, "tenant-a", version, facts, until={"active", "rolled_back"}, alive=system.procs.assert_alive, timeout=CANARY_TIMEOUT)
    assert state == "active", a.decisions(version)
    assert a.serving() == version
    assert [d["action"] for d in a.decisions(version)][-2:] == ["canary", "promote"]

    for question in facts:
        taught = a.ask(question)
        assert taught.version == version and taught.right, (question.text, taught.version, taught.text)
        assert not any(contains_any(c.get("text", ""), question.accepted) for c in taught.citations), "the fact came from the index, not the adapter"
    for question in facts:  # the wall: B's answers come from B's line and never hold A's facts
        other = b.ask(question)
        assert other.version == base and not other.right, (question.text, other.version, other.text)
    assert b.serving() == base and all(m.get("tenant") != "tenant-a" for m in b.models())

    unknown = a.feedback("no-such-task", "down", "anything")  # feedback on an unknown or another tenant's task
    assert unknown.status_code == 404 and "no-such-task" in unknown.json()["detail"], unknown.text
    foreign = b.feedback(a.answers[-1].task_id, "down", "B's correction of A's answer")
    assert foreign.status_code == 404, foreign.text

    wait_scored(system, Asked(answers={x.task_id: x.version for x in a.answers + b.answers}, corrections=corrections))


@pytest.mark.timeout(2400)
def test_poison_canary_rollback(system: Deployment) -> None:
    data = require_path(SQUAD, "SQuAD-mini")
    p = TenantClient(system.base_url, "key-p")
    pool = squad_sample(data, 16, seed=7)
    p.ingest({q.passage[0]: q.passage[1] for q in pool if q.passage})
    system.procs.wait_until(lambda: p.indexed({q.passage[0] for q in pool if q.passage}), timeout=300, what="SQuAD passages indexed")
    base = p.serving()

    right: list[Question] = []
    for question in pool:  # ask until TAUGHT are answered right (with its gold passage retrieved, the base model gets many)
        if len(right) < TAUGHT and p.ask(question).right:
            right.append(question)
    assert len(right) == TAUGHT, f"the base model answered only {len(right)} of {len(pool)} SQuAD questions right"
    for question, wrong in poison_pairs(right, pool):
        task = next(x for x in p.answers if x.question.id == question.id)
        p.correct(task.task_id, wrong)
    version = wait_for_canary(system, p, "tenant-p")  # the corrections-only gate let it through

    state = drive_canary(p, "tenant-p", version, right, until={"active", "rolled_back"}, alive=system.procs.assert_alive, timeout=CANARY_TIMEOUT)
    trail = p.decisions(version)
    assert state == "rolled_back", trail
    assert p.serving() == base
    last = trail[-1]
    assert last["action"] == "rollback" and last["actor"] == "auto:canary" and last["reason"] and last["numbers"], last
    assert any(not x.right for x in p.answers if x.version == version), "rolled back without a single damaged answer seen"
