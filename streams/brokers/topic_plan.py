"""Apply the topic plan (streams/topics.py) to a Kafka cluster whose auto-create is off.

Every topic is checked against the cluster before any is created, so a plan that cannot fit (more
replicas than brokers) fails whole with the reason instead of leaving half the topics behind.
Existing topics are reported with their partition count and left alone: Kafka cannot shrink a
topic, and growing one moves keys to other partitions, which breaks the order the key promised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.topics import Topic


class TopicPlanError(ValueError):
    """The plan does not fit the cluster; the message says which topics and why."""


@dataclass
class PlanResult:
    created: list[str] = field(default_factory=list)
    existing: dict[str, int] = field(default_factory=dict)
    """Topics already there, with the partitions they have."""


def check_fits(topics: Sequence[Topic], brokers: int) -> None:
    """Refuse topics asking more replicas than there are brokers (Kafka would refuse them one by one)."""
    over = [t.name for t in topics if t.replication > brokers]
    if over:
        wanted = max(t.replication for t in topics)
        raise TopicPlanError(f"{len(over)} topic(s) ask for {wanted} replicas but the cluster has {brokers} broker(s) "
                             f"({', '.join(over[:3])}{' …' if len(over) > 3 else ''}); "
                             f"add brokers or pass --replication {brokers}")


def apply_plan(bootstrap: list[str], topics: Sequence[Topic], *, prefix: str = "") -> PlanResult:
    """Create the planned topics that are missing (names carry `prefix`); report the ones that exist."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ragloop-admin")
    try:
        brokers = len(admin.describe_cluster()["brokers"])
        present = set(admin.list_topics())
        result = PlanResult()
        missing = [t for t in topics if prefix + t.name not in present]
        check_fits(missing, brokers)
        there = [prefix + t.name for t in topics if prefix + t.name in present]
        if there:
            result.existing = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(there)}
        for topic in missing:
            name = prefix + topic.name
            try:
                admin.create_topics([NewTopic(name, num_partitions=topic.partitions, replication_factor=topic.replication,
                                              topic_configs=topic.config())])
                result.created.append(name)
            except TopicAlreadyExistsError:  # another process created it between our listing and now
                result.existing[name] = topic.partitions
        return result
    finally:
        admin.close()
