"""A misconfigured `ragloop worker ROLE` (issue #12, "Bad input") exits non-zero with one line saying
what is wrong, never a stack trace: an unknown role lists the roles, an unreachable bootstrap server
is named once the start patience has run out, and a gateway whose API keys were never mounted refuses
to serve a 401 to everyone."""

from __future__ import annotations

from pathlib import Path

from streams.runtime import ROLES
from tests.e2e.conftest import free_port
from tests.integration.cli_harness import Cli


def cluster_env(home: Path, **extra: str) -> dict[str, str]:
    return {"RAGLOOP_HOME": str(home), "RAGLOOP_SEARCH_URL": "embedded://", "RAGLOOP_LOG_LEVEL": "CRITICAL", **extra}


def test_an_unknown_role_is_refused_with_the_list_of_roles(tmp_path: Path) -> None:
    result = Cli(cluster_env(tmp_path / "home"))("worker", "indexer")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "unknown role 'indexer'; choose from " + ", ".join([*ROLES, "gateway"]) in result.stderr


def test_a_worker_against_a_closed_bootstrap_port_exits_with_one_line(tmp_path: Path) -> None:
    port = free_port()  # bound and released: nothing listens there
    cli = Cli(cluster_env(tmp_path / "home", RAGLOOP_BROKER_URL=f"kafka://127.0.0.1:{port}", RAGLOOP_WORKERS_START_PATIENCE_S="1"))
    result = cli("worker", "feedback", timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr and "│" not in result.stderr
    assert errors == [f"error: cannot reach Kafka at kafka://127.0.0.1:{port} after 1 s (RAGLOOP_WORKERS_START_PATIENCE_S): "
                      f"KafkaTimeoutError: Unable to bootstrap from ['127.0.0.1:{port}']"]


def test_a_cluster_gateway_without_api_keys_refuses_to_start(tmp_path: Path) -> None:
    cli = Cli(cluster_env(tmp_path / "home", RAGLOOP_BROKER_URL=f"kafka://127.0.0.1:{free_port()}"), drop=("RAGLOOP_API_KEYS", "RAGLOOP_AUTH"))
    result = cli("worker", "gateway", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: RAGLOOP_API_KEYS is not set")
    assert "RAGLOOP_AUTH=off" in result.stderr


def test_a_worker_serves_healthz_and_metrics_on_its_health_port_once_consuming(kafka_url: str, unique: str, tmp_path: Path) -> None:
    """What the Helm chart's probes and ServiceMonitor use (RAGLOOP_WORKERS_HEALTH_PORT)."""
    import httpx

    from tests.e2e.conftest import processes
    from tests.support import wait_for

    port = free_port()
    env = cluster_env(tmp_path / "home", RAGLOOP_BROKER_URL=kafka_url, RAGLOOP_TOPIC_PREFIX=f"health{unique}.",
                      RAGLOOP_WORKERS_HEALTH_PORT=str(port), RAGLOOP_KAFKA_PARTITIONS="1")
    try:
        with processes(env, tmp_path / "logs") as procs:
            procs.start("feedback", "worker", "feedback")

            def answers() -> httpx.Response | None:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                except httpx.TransportError:
                    return None

            health = wait_for(answers, timeout=120, what="the worker's /healthz")
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        from tests.integration.test_cli_kafka import delete_topics

        delete_topics(kafka_url, f"health{unique}.")
    assert health.status_code == 200 and health.json() == {"status": "ok", "roles": ["feedback"]}
    assert metrics.status_code == 200 and "ragloop_" in metrics.text
