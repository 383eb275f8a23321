"""Shared fixtures: isolated settings per test and the real services integration tests need.

A missing service skips its tests on a developer machine, but fails them when
`RAGLOOP_REQUIRE_SERVICES=1` (CI sets it), so a green CI run always exercised the real servers.
"Present" means the service itself answered, not just its port: Kafka answers a metadata request,
OpenSearch's root document says `"distribution": "opensearch"`, PostgreSQL runs `SELECT 1`.

Markers `kafka`, `opensearch` and `postgres` are applied here, at collection, to every test that
uses the matching `*_url` fixture (directly or through other fixtures), or that runs under a
parameter named after the service (`[kafka]`, `[kafka-batched]`: fixtures that ask for the URL at
run time). So `-m "not kafka"` deselects exactly the tests that would touch Kafka.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from schemas.settings import Settings
from tests.support import unavailable

# The service fixtures, and the marker each one puts on the tests that use it.
SERVICE_MARKERS = {"kafka_url": "kafka", "opensearch_url": "opensearch", "postgres_url": "postgres"}


def _reachable(url: str) -> bool:
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=2):
            return True
    except OSError:
        return False


def _kafka_answers(url: str) -> None:
    """A metadata request (after the client's API-versions handshake) answered by a Kafka broker."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=url.removeprefix("kafka://").split(","), client_id="ragloop-test-probe",
                             request_timeout_ms=5000, bootstrap_timeout_ms=5000)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    if not cluster.get("brokers"):
        raise RuntimeError(f"the cluster lists no brokers: {cluster}")


def _opensearch_answers(url: str) -> None:
    """The root document of an OpenSearch node (Elasticsearch, or anything else, is refused)."""
    import httpx

    document = httpx.get(url, timeout=5).raise_for_status().json()
    distribution = (document.get("version") or {}).get("distribution")
    if distribution != "opensearch":
        raise RuntimeError(f"GET / answered a node whose version.distribution is {distribution!r}, not 'opensearch'")


def _postgres_answers(url: str) -> None:
    """A real PostgreSQL session: connect with the test credentials and run a query."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as connection:
        if connection.execute("SELECT 1").fetchone() != (1,):
            raise RuntimeError("SELECT 1 did not return 1")


# How each service proves it is the one expected (a name without a probe gets a TCP check).
PROBES: dict[str, Callable[[str], None]] = {"Kafka": _kafka_answers, "OpenSearch": _opensearch_answers, "Postgres": _postgres_answers}


def require_service(name: str, env: str, default: str) -> str:
    url = os.environ.get(env, default)
    hint = f"start it: deploy/local/services.sh start {name.lower()}; or set {env}"
    if not _reachable(url):
        unavailable(f"{name} is not reachable at {url} ({hint})")
    probe = PROBES.get(name)
    if probe is not None:
        try:
            probe(url)
        except Exception as error:  # noqa: BLE001 — whatever answered, it is not a usable service
            detail = str(error) if type(error).__name__ in str(error) else f"{type(error).__name__}: {error}"
            unavailable(f"something answers at {url}, but not {name}: {detail} ({hint})")
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = [p for p in (callspec.params.values() if callspec else ()) if isinstance(p, str)]
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in fixtures or any(p == marker or p.startswith(f"{marker}-") for p in params):
                item.add_marker(marker)


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, tenants and index names, so tests never collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded everything under a fresh folder; tests override fields with `model_copy(update=…)`."""
    return Settings(home=tmp_path / "home", broker={"url": "memory://"}, search={"url": "embedded://"}, workers={"retry_backoff_s": 0.05})


@pytest.fixture(scope="session")
def clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A small random-weight CLIP (`ViT-S-32-alt`, 256-d) built from open_clip's own config and saved as a
    state_dict: (architecture, checkpoint path), loaded by tests through `RAGLOOP_CLIP_*` like real weights."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-S-32-alt", pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "vit-s-32-alt.pt"
    torch.save(model.state_dict(), path)
    return "ViT-S-32-alt", path


@pytest.fixture
def clip_settings(settings: Settings, clip_checkpoint: tuple[str, Path]) -> Settings:
    """`settings` with image features on (the test CLIP checkpoint)."""
    name, path = clip_checkpoint
    return settings.model_copy(update={"clip": type(settings.clip)(model=name, checkpoint=path)})
