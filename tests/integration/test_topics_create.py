"""`ragloop topics create --bootstrap HOST:PORT` against the real local Kafka (one broker): the plan's
three replicas do not fit and nothing is created; with `--replication 1` every topic gets the plan's
partitions and retention; a second run reports them all as existing and succeeds."""

from __future__ import annotations

from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from streams.topics import planned_topics
from tests.integration.cli_harness import Cli, embedded_env
from tests.integration.test_cli_kafka import delete_topics


def test_topics_create_applies_the_plan_once_and_refuses_more_replicas_than_brokers(kafka_url: str, unique: str, tmp_path: Path) -> None:
    prefix = f"plan{unique}."
    bootstrap = kafka_url.removeprefix("kafka://")
    # The embedded broker in the environment: --bootstrap alone names the cluster.
    cli = Cli(embedded_env(tmp_path / "home"))
    plan = {prefix + t.name: t for t in planned_topics()}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="ragloop-plan-tests")
    try:
        too_many = cli("topics", "create", "--bootstrap", bootstrap, "--prefix", prefix)
        left_behind = [n for n in admin.list_topics() if n.startswith(prefix)]
        first = cli.ok("topics", "create", "--bootstrap", bootstrap, "--prefix", prefix, "--replication", "1")
        again = cli.ok("topics", "create", "--bootstrap", bootstrap, "--prefix", prefix, "--replication", "1")
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(plan))}
        ingest = prefix + "docs.ingest"
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, ingest)])
        retention = configs["topic"][ingest]["retention.ms"]["value"]
    finally:
        admin.close()
        delete_topics(kafka_url, prefix)
    assert too_many.returncode == 1 and "Traceback" not in too_many.stderr
    assert "ask for 3 replicas but the cluster has 1 broker(s)" in too_many.stderr and "--replication 1" in too_many.stderr
    assert left_behind == []
    assert partitions == {name: topic.partitions for name, topic in plan.items()}
    assert retention == str(plan[ingest].retention_ms)
    assert f"created {len(plan)} topic(s); 0 already existed" in first.stderr
    assert f"created 0 topic(s); {len(plan)} already existed" in again.stderr and f"exists: {ingest} (12 partition(s))" in again.stderr


def test_topics_create_against_a_closed_port_fails_in_one_line(tmp_path: Path) -> None:
    from tests.e2e.conftest import free_port

    result = Cli(embedded_env(tmp_path / "home"))("topics", "create", "--bootstrap", f"127.0.0.1:{free_port()}", timeout=180)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: cannot reach Kafka at 127.0.0.1:" in result.stderr
