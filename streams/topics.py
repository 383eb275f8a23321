"""The topic registry and the topic plan: every topic name, the event it carries, its dead-letter
twin, and how it is laid out on a Kafka cluster (partitions, key, retention, replication).

The plan lives here as data so that `ragloop topics create`, the AsyncAPI document and the Helm
chart's autoscaling ceiling (a consumer group never gets more replicas than its topic has
partitions: the extra ones would sit idle) all read the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import EVENT_MODELS, Event

DLQ_SUFFIX = ".dlq"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DLQ_PARTITIONS = 1  # dead letters are few and read by a person (`ragloop dlq`), in the order they came
DLQ_RETENTION_MS = 30 * DAY_MS  # long enough to notice, fix and `ragloop dlq replay`


@dataclass(frozen=True)
class Topic:
    name: str
    event: type[Event]
    description: str
    key: str = "event id"
    """What the Kafka key is (the event's `key()`): one key's events land on one partition, in order."""
    order: str = "none needed: each event stands alone"
    """What that key keeps in order, for the README's table."""
    partitions: int = 6
    """Partitions in production; the most consumers of one group that can do work at once."""
    retention_ms: int = 7 * DAY_MS
    replication: int = 3
    """Replicas of each partition in production (`ragloop topics create --replication 1` on one broker)."""

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX

    def config(self) -> dict[str, str]:
        """Kafka topic configuration: time-based retention and, with three replicas, writes that
        survive one broker being down (`min.insync.replicas` = replicas − 1)."""
        config = {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}
        if self.replication > 1:
            config["min.insync.replicas"] = str(self.replication - 1)
        return config


@dataclass(frozen=True)
class Layout:
    description: str
    key: str
    order: str
    partitions: int
    retention_ms: int


_BY_DOCUMENT = "every change to one document (ingest, delete, progress) is applied in the order it was sent"
_BY_CONVERSATION = "one conversation's turns are answered, streamed and finished in order"
_BY_TASK = "one task's metrics, ratings and image job are seen in order"
_BY_FAMILY = "one model family's training runs and version changes are serialised"
_LAYOUT = {
    "docs.ingest": Layout("A document to (re)index; keyed by document id.", "document id", _BY_DOCUMENT, 12, 7 * DAY_MS),
    "docs.delete": Layout("Remove a document's chunks; keyed by document id.", "document id", _BY_DOCUMENT, 12, 7 * DAY_MS),
    "docs.progress": Layout("Ingestion progress per document: queued … indexed / failed.", "document id", _BY_DOCUMENT, 12, DAY_MS),
    "docs.indexed": Layout("A document's chunks are searchable.", "document id", _BY_DOCUMENT, 12, DAY_MS),
    "chat.requests": Layout("A chat task; keyed by conversation id so turns stay in order.", "conversation id", _BY_CONVERSATION, 24,
                            DAY_MS),
    "chat.tokens": Layout("Token deltas of a running chat task.", "conversation id", _BY_CONVERSATION, 24, HOUR_MS),
    "chat.responses": Layout("Answer, citations, model version and timings of a finished chat task.", "conversation id",
                             _BY_CONVERSATION, 24, 7 * DAY_MS),
    "images.generate": Layout("A text-to-image job.", "task id", _BY_TASK, 6, DAY_MS),
    "eval.results": Layout("Online metrics of one answer.", "task id", _BY_TASK, 6, 30 * DAY_MS),
    "feedback.events": Layout("A rating and optional correction of one answer.", "task id", _BY_TASK, 6, 30 * DAY_MS),
    "train.requests": Layout("Start a LoRA training run from accumulated corrections.", "model family", _BY_FAMILY, 1, 30 * DAY_MS),
    "model.updated": Layout("A model version changed state (candidate, active, rejected …).", "model family", _BY_FAMILY, 1,
                            30 * DAY_MS),
    # High-priority chat tasks get their own topic so they never wait behind a backlog of normal ones.
    "chat.requests.high": Layout("High-priority chat tasks, served first.", "conversation id", _BY_CONVERSATION, 6, DAY_MS),
    # Documents above RAGLOOP_INGEST_LARGE_BYTES are moved here by the ingest worker, so a huge file
    # is indexed beside the small ones instead of in front of them.
    "docs.ingest.large": Layout("Large documents, indexed on their own lane.", "document id", _BY_DOCUMENT, 3, 7 * DAY_MS),
}
_EVENT_OF = {"chat.requests.high": "chat.requests", "docs.ingest.large": "docs.ingest"}

TOPICS: dict[str, Topic] = {
    name: Topic(name, EVENT_MODELS[_EVENT_OF.get(name, name)], layout.description, layout.key, layout.order, layout.partitions,
                layout.retention_ms)
    for name, layout in _LAYOUT.items()
}
assert set(EVENT_MODELS) <= set(TOPICS), f"topics without a layout: {set(EVENT_MODELS) - set(TOPICS)}"


def topic_for(event: Event) -> Topic:
    return TOPICS[event.topic()]


def all_topic_names(include_dlq: bool = True) -> list[str]:
    names = list(TOPICS)
    return names + [t.dlq for t in TOPICS.values()] if include_dlq else names


def planned_topics() -> list[Topic]:
    """Every topic and its dead-letter twin, as `ragloop topics create` lays them out."""
    letters = [Topic(t.dlq, t.event, f"Dead letters of {t.name}.", t.key, "arrival order", DLQ_PARTITIONS, DLQ_RETENTION_MS,
                     t.replication) for t in TOPICS.values()]
    return [*TOPICS.values(), *letters]


def resolve(name: str) -> Topic:
    try:
        return TOPICS[name]
    except KeyError:
        raise ValueError(f"unknown topic {name!r}; known topics: {', '.join(TOPICS)}") from None
