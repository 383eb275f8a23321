"""Shared fixtures: isolated settings per test and the real services integration tests need.

A missing service skips its tests on a developer machine, but fails them when
`RAGLOOP_REQUIRE_SERVICES=1` (CI sets it), so a green CI run always exercised the real servers.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from schemas.settings import Settings  # noqa: E402


def _reachable(url: str) -> bool:
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, env: str, default: str) -> str:
    url = os.environ.get(env, default)
    if not _reachable(url):
        message = f"{name} is not reachable at {url} (start it: deploy/local/services.sh start {name.lower()}; or set {env})"
        if os.environ.get("RAGLOOP_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def kafka_url() -> str:
    return require_service("Kafka", "RAGLOOP_TEST_KAFKA_URL", "kafka://127.0.0.1:9092")


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    return require_service("OpenSearch", "RAGLOOP_TEST_OPENSEARCH_URL", "http://127.0.0.1:9200")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return require_service("Postgres", "RAGLOOP_TEST_POSTGRES_URL", "postgresql://ragloop:ragloop@127.0.0.1:5432/ragloop_test")


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, tenants and index names, so tests never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded everything under a fresh folder; tests override fields with `model_copy(update=…)`."""
    return Settings(home=tmp_path / "home", broker_url="memory://", search_url="embedded://", worker_retry_backoff_s=0.05)
