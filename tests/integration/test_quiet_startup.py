"""Start-up is quiet and says what it does: expected races are DEBUG, not ERROR or WARNING;
every process names what it consumes and where it serves; /healthz names its real roles."""

from __future__ import annotations

import logging
import subprocess
import sys

import httpx
import pytest
from aiokafka import errors as kafka_errors
from opensearchpy import OpenSearch

from indexing.backends.opensearch import OpenSearchBackend
from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime

COORDINATOR = "aiokafka.consumer.group_coordinator"


def _stderr_of(level: str) -> str:
    """What a worker's log shows for a coordinator race and for a real error, at a log level."""
    script = (
        "import logging; from aiokafka import errors as E; from streams.logging import configure_logging; "
        f"configure_logging({level!r}); log = logging.getLogger({COORDINATOR!r}); "
        "log.error('Group Coordinator Request failed: %s', E.CoordinatorNotAvailableError()); "
        "log.error('OffsetCommit failed for group g: %s', 'TopicAuthorizationFailedError')"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stderr


def test_the_coordinator_race_at_start_up_is_debug_and_real_errors_stay_errors() -> None:
    quiet = _stderr_of("INFO")
    assert "CoordinatorNotAvailable" not in quiet
    assert "ERROR aiokafka.consumer.group_coordinator: OffsetCommit failed" in quiet
    assert "DEBUG aiokafka.consumer.group_coordinator: Group Coordinator Request failed" in _stderr_of("DEBUG")
    assert kafka_errors.CoordinatorNotAvailableError.retriable  # what makes it safe to demote: the client retries it


def test_two_workers_racing_to_create_the_index_log_no_warning(opensearch_url: str, unique: str, caplog: pytest.LogCaptureFixture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"ragloop-race-{unique}"
    first = OpenSearchBackend(opensearch_url, dimension=8, index_prefix=prefix)
    try:
        # The second worker checked "does the index exist?" just before the first created it.
        late = OpenSearch(hosts=[opensearch_url])
        monkeypatch.setattr(late.indices, "exists", lambda **_: False)
        with caplog.at_level(logging.DEBUG, logger="opensearch"):
            second = OpenSearchBackend(opensearch_url, dimension=8, index_prefix=prefix, client=late)
        assert second.index_name == first.index_name
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == [], caplog.text
    finally:
        first.drop_index()
        first.close()


def test_healthz_names_the_gateway_beside_the_roles_it_hosts(settings: Settings) -> None:
    for roles in ([], ["eval", "feedback"]):
        with serve_in_thread(create_app(Runtime(settings, roles))) as url:
            assert httpx.get(f"{url}/healthz").json()["roles"] == [*roles, "gateway"]


def test_a_process_says_what_it_consumes_and_hides_the_database_password(settings: Settings, postgres_url: str) -> None:
    described = Runtime(settings.override(database_url=postgres_url), ["eval"]).describe()
    assert described.startswith("consuming chat.responses, feedback.events from memory://; search embedded://; "
                                "database postgresql+psycopg://ragloop:***@")
    assert ":ragloop@" not in described
