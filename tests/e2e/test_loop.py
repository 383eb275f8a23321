"""End to end, once embedded (`ragloop up`) and once on Kafka + OpenSearch + PostgreSQL with one
process per role: ingest, cited answer, five corrections, automatic retrain, answers learned, and
every answer and correction scored onto eval.results by the eval worker.

Budgets, from one measured run of each on the 2-core development box while other test runs shared
it (load average 4-10; every run prints its phase times, `pytest -s` shows them), in seconds:

    phase                                      embedded   Kafka
    start the role process(es) until /healthz     ~110       53
    ingest and index 3 documents                     1       30
    cited answer (first generation)                104       78
    5 answers by the base model, each corrected     76       35
    6 answers and 5 corrections scored               1       50
    retrain, gate and promote                      281      417
    5 answers by the new adapter                    24       20
    all answers and corrections scored               0        3
    whole test                                     601      691

So the loop waits at most BUDGET.retrain = 900 s (about twice the slowest retrain) for a new
adapter, and each test may take 1,500 s (about twice the slowest test): a retrain that overruns
fails with the loop's own message and the workers' logs (900 s + ~330 s of the rest), not with
pytest-timeout, and the project-wide `timeout = 900` of pyproject.toml no longer cuts it short.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.database import Database
from schemas.settings import Settings
from schemas.tables import EvalRecord
from streams.brokers import make_broker
from tests.e2e.conftest import free_port, fresh_postgres_schema, processes, wait_healthy
from tests.e2e.loop import Asked, Budget, LoopClient, Phases, Unscored, run_the_loop
from tests.support import read_topic

pytestmark = pytest.mark.slow

COMMON = {"RAGLOOP_FEEDBACK_MIN_CORRECTIONS": "5", "RAGLOOP_MAX_NEW_TOKENS": "40", "RAGLOOP_WORKER_RETRY_BACKOFF_S": "0.2"}
BUDGET = Budget(healthy=240, indexed=300, retrain=900, scored=180)  # measured above


def unscored_per_metrics_and_store(base_url: str, home: Path) -> Unscored:
    """One process: eval.results lives in its memory, so read what it exports on /metrics (events
    published onto eval.results; token F1 computed, which only a correction's re-score has) and,
    per task, the eval record the eval worker stored beside each publish."""
    db = Database.from_settings(Settings(home=home, database_url=None))

    def eval_of(task: str) -> EvalRecord | None:
        with db.session() as s:
            return s.get(EvalRecord, task)

    def unscored(asked: Asked) -> list[str]:
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics", timeout=10).text) for s in family.samples}
        published = samples.get(("ragloop_events_published_total", (("topic", "eval.results"),)), 0)
        token_f1 = samples.get(("ragloop_eval_metric_count", (("metric", "token_f1"),)), 0)
        missing = [f"{task}: no eval record for its answer by {version}" for task, version in asked.answers.items()
                   if (record := eval_of(task)) is None or record.model_version != version]
        if published < len(asked.answers) + len(asked.corrections):
            missing.append(f"{published:.0f} events on eval.results for {len(asked.answers)} answers + {len(asked.corrections)} corrections")
        if token_f1 < len(asked.corrections):
            missing.append(f"token F1 scored {token_f1:.0f} times for {len(asked.corrections)} corrections")
        return missing

    return unscored


def unscored_on_topic(settings: Settings) -> Unscored:
    """Cluster: read eval.results itself, one event per answer (`<task>.eval`) and one re-score per
    correction (`<task>.eval.<feedback>`), which alone has a reference to compute token F1 against."""
    broker = make_broker(settings)

    def unscored(asked: Asked) -> list[str]:
        events = {event["event_id"]: event for event in read_topic(settings, broker, "eval.results", timeout_s=3)}
        missing = [f"{task}: answer by {version} not scored" for task, version in asked.answers.items()
                   if (event := events.get(f"{task}.eval")) is None or event["model_version"] != version]
        missing += [f"{task}: correction {feedback} not scored" for task, feedback in asked.corrections.items()
                    if (event := events.get(f"{task}.eval.{feedback}")) is None or event["metrics"]["token_f1"] is None]
        return missing

    return unscored


@pytest.mark.timeout(1500)  # measured: see the module docstring
def test_whole_loop_embedded(tmp_path: Path) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    home = tmp_path / "home"
    env = {**COMMON, "RAGLOOP_HOME": str(home), "RAGLOOP_BROKER_URL": "memory://", "RAGLOOP_SEARCH_URL": "embedded://"}
    with processes(env, tmp_path / "logs") as procs:
        phase = Phases()
        with phase("start `ragloop up` until /healthz answers"):
            procs.start("up", "up", "--port", str(port))
            wait_healthy(base_url, procs, timeout=BUDGET.healthy)
        run_the_loop(LoopClient(base_url, procs.wait_until), unscored_per_metrics_and_store(base_url, home), BUDGET, phase)
        procs.assert_alive()


@pytest.mark.timeout(1500)  # measured: see the module docstring
def test_whole_loop_on_kafka_opensearch_postgres(tmp_path: Path, unique: str, kafka_url: str, opensearch_url: str, postgres_url: str) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    prefix = f"e2e{unique}."
    with fresh_postgres_schema(postgres_url, f"e2e_{unique}") as database_url:
        env = {**COMMON, "RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_BROKER_URL": kafka_url, "RAGLOOP_SEARCH_URL": opensearch_url,
               "RAGLOOP_DATABASE_URL": database_url, "RAGLOOP_TOPIC_PREFIX": prefix, "RAGLOOP_OPENSEARCH_INDEX": f"ragloop-e2e-{unique}",
               "RAGLOOP_API_PORT": str(port), "RAGLOOP_API_KEYS": "e2e-key=default"}  # cluster mode: API keys are on
        with processes(env, tmp_path / "logs") as procs:
            phase = Phases()
            with phase("start 6 role processes until /healthz answers"):
                for role in ("ingest", "agent", "eval", "feedback", "trainer"):
                    procs.start(role, "worker", role)
                procs.start("gateway", "worker", "gateway")
                wait_healthy(base_url, procs, timeout=BUDGET.healthy)
            unscored = unscored_on_topic(Settings(broker={"url": kafka_url, "topic_prefix": prefix}))
            run_the_loop(LoopClient(base_url, procs.wait_until, api_key="e2e-key"), unscored, BUDGET, phase)
            procs.assert_alive()
