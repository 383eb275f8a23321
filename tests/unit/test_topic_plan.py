"""The topic plan (streams/topics.py) is data the CLI, the AsyncAPI document and the Helm chart read:
its keys are the ones the events really use, it fits a cluster or says why not, and the AsyncAPI
document states it."""

from __future__ import annotations

import inspect

import pytest

from streams.asyncapi import asyncapi_document
from streams.brokers.topic_plan import TopicPlanError, check_fits
from streams.topics import DLQ_SUFFIX, TOPICS, planned_topics


@pytest.mark.parametrize("name", list(TOPICS))
def test_the_planned_key_is_the_one_the_event_is_keyed_by(name: str) -> None:
    topic = TOPICS[name]
    source = inspect.getsource(topic.event.key)
    assert f"self.{topic.key.replace(' ', '_')}" in source, f"{name}: plan says {topic.key!r}, event keys by:\n{source}"


def test_every_topic_and_its_dead_letter_topic_is_planned_with_retention_and_replicas() -> None:
    plan = {t.name: t for t in planned_topics()}
    assert set(plan) == set(TOPICS) | {n + DLQ_SUFFIX for n in TOPICS}
    for topic in plan.values():
        assert topic.partitions >= 1 and topic.replication == 3
        assert topic.config() == {"cleanup.policy": "delete", "retention.ms": str(topic.retention_ms), "min.insync.replicas": "2"}


def test_a_plan_asking_more_replicas_than_brokers_is_refused_naming_the_fix() -> None:
    with pytest.raises(TopicPlanError, match=r"ask for 3 replicas but the cluster has 1 broker.*--replication 1"):
        check_fits(planned_topics(), brokers=1)
    check_fits(planned_topics(), brokers=3)


def test_the_asyncapi_document_states_each_channels_partitions_retention_and_key() -> None:
    document = asyncapi_document()
    plan = {t.name: t for t in planned_topics()}
    for channel in document["channels"].values():
        binding = channel["bindings"]["kafka"]
        topic = plan[channel["address"]]
        assert (binding["topic"], binding["partitions"], binding["replicas"]) == (topic.name, topic.partitions, topic.replication)
        assert binding["topicConfiguration"]["retention.ms"] == topic.retention_ms
    ingest = document["components"]["messages"]["DocumentIngest"]
    assert ingest["bindings"]["kafka"]["key"]["description"] == "The document id."


def test_the_readme_table_of_keys_and_order_is_the_plan() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("| Key | Topics (partitions) | Kept in order |"):]
    rows = re.findall(r"^\| ([a-z ]+) \| (.+?) \| (.+?) \|$", table[:table.index("\n\n")], flags=re.MULTILINE)
    documented = {name: (key, int(partitions), order) for key, topics, order in rows
                  for name, partitions in re.findall(r"`([a-z.]+)` \((\d+)\)", topics)}
    assert documented == {name: (t.key, t.partitions, t.order) for name, t in TOPICS.items()}
