"""Start ragloop the two ways the issue's "Done when" names, for the learning-loop tests and benchmark:
embedded (`ragloop up`, one process) or cluster (Kafka + OpenSearch + PostgreSQL, one `ragloop worker
ROLE` process per role), with the environment a run asks for. API keys are always on, so each tenant
is a key and the tenant wall is the one production has."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import Processes, free_port, fresh_postgres_schema, processes, wait_healthy

ROLES = ("ingest", "agent", "eval", "feedback", "trainer")


@dataclass
class Deployment:
    base_url: str
    procs: Processes
    database_url: str | None  # None: the SQLite file under home (embedded)
    home: Path
    broker_url: str = "memory://"
    topic_prefix: str = ""


@dataclass(frozen=True)
class Cluster:
    kafka_url: str
    opensearch_url: str
    postgres_url: str
    unique: str


@contextmanager
def deployment(tmp: Path, env: dict[str, str], *, cluster: Cluster | None = None, healthy_timeout: float = 300) -> Iterator[Deployment]:
    """ragloop running with `env` (plus home, port and the mode's URLs) until the block ends."""
    port = free_port()
    home = tmp / "home"
    env = {**env, "RAGLOOP_HOME": str(home), "RAGLOOP_API_PORT": str(port)}
    with ExitStack() as stack:
        database_url, prefix = None, ""
        if cluster is None:
            env |= {"RAGLOOP_BROKER_URL": "memory://", "RAGLOOP_SEARCH_URL": "embedded://"}
        else:
            database_url = stack.enter_context(fresh_postgres_schema(cluster.postgres_url, f"learn_{cluster.unique}"))
            prefix = f"learn{cluster.unique}."
            env |= {"RAGLOOP_BROKER_URL": cluster.kafka_url, "RAGLOOP_SEARCH_URL": cluster.opensearch_url, "RAGLOOP_DATABASE_URL": database_url,
                    "RAGLOOP_TOPIC_PREFIX": prefix, "RAGLOOP_OPENSEARCH_INDEX": f"ragloop-learn-{cluster.unique}"}
        procs = stack.enter_context(processes(env, tmp / "logs"))
        if cluster is None:
            procs.start("up", "up", "--port", str(port))
        else:
            for role in ROLES:
                procs.start(role, "worker", role)
            procs.start("gateway", "worker", "gateway")
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, procs, timeout=healthy_timeout)
        yield Deployment(base_url=base_url, procs=procs, database_url=database_url, home=home,
                         broker_url=cluster.kafka_url if cluster else "memory://", topic_prefix=prefix)
