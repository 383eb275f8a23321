"""End to end, once embedded (`ragloop up`) and once on Kafka + OpenSearch + PostgreSQL with one
process per role: ingest, cited answer, five corrections, automatic retrain, answers learned."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import schemas.tables  # noqa: F401 — registers the tables to drop
from schemas.settings import Settings
from tests.e2e.conftest import free_port, processes, wait_healthy
from tests.e2e.loop import LoopClient, run_the_loop

pytestmark = pytest.mark.slow

COMMON = {"RAGLOOP_FEEDBACK_MIN_CORRECTIONS": "5", "RAGLOOP_MAX_NEW_TOKENS": "40", "RAGLOOP_WORKER_RETRY_BACKOFF_S": "0.2"}


def test_whole_loop_embedded(tmp_path: Path) -> None:
    port = free_port()
    env = {**COMMON, "RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_BROKER_URL": "memory://", "RAGLOOP_SEARCH_URL": "embedded://"}
    with processes(env, tmp_path / "logs") as procs:
        procs.start("up", "up", "--port", str(port))
        wait_healthy(f"http://127.0.0.1:{port}", procs)
        run_the_loop(LoopClient(f"http://127.0.0.1:{port}"))


def test_whole_loop_on_kafka_opensearch_postgres(tmp_path: Path, unique: str, kafka_url: str, opensearch_url: str, postgres_url: str) -> None:
    database = Settings(database_url=postgres_url).sqlalchemy_url
    engine = create_engine(database)
    SQLModel.metadata.drop_all(engine)  # a clean slate in the shared test database
    engine.dispose()
    port = free_port()
    env = {**COMMON, "RAGLOOP_HOME": str(tmp_path / "home"), "RAGLOOP_BROKER_URL": kafka_url, "RAGLOOP_SEARCH_URL": opensearch_url,
           "RAGLOOP_DATABASE_URL": postgres_url, "RAGLOOP_TOPIC_PREFIX": f"e2e{unique}.", "RAGLOOP_OPENSEARCH_INDEX": f"ragloop-e2e-{unique}",
           "RAGLOOP_API_PORT": str(port), "RAGLOOP_API_KEYS": "e2e-key=default"}  # cluster mode: API keys are on
    with processes(env, tmp_path / "logs") as procs:
        for role in ("ingest", "agent", "eval", "feedback", "trainer"):
            procs.start(role, "worker", role)
        procs.start("gateway", "worker", "gateway")
        wait_healthy(f"http://127.0.0.1:{port}", procs)
        run_the_loop(LoopClient(f"http://127.0.0.1:{port}", api_key="e2e-key"))
