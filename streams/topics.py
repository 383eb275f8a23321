"""The topic registry: every topic name, the event it carries, and its dead-letter twin."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import EVENT_MODELS, Event

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    name: str
    event: type[Event]
    description: str

    @property
    def dlq(self) -> str:
        return self.name + DLQ_SUFFIX


_DESCRIPTIONS = {
    "docs.ingest": "A document to (re)index; keyed by document id.",
    "docs.delete": "Remove a document's chunks; keyed by document id.",
    "docs.progress": "Ingestion progress per document: queued … indexed / failed.",
    "docs.indexed": "A document's chunks are searchable.",
    "chat.requests": "A chat task; keyed by conversation id so turns stay in order.",
    "chat.tokens": "Token deltas of a running chat task.",
    "chat.responses": "Answer, citations, model version and timings of a finished chat task.",
    "images.generate": "A text-to-image job.",
    "eval.results": "Online metrics of one answer.",
    "feedback.events": "A rating and optional correction of one answer.",
    "train.requests": "Start a LoRA training run from accumulated corrections.",
    "model.updated": "A model version changed state (candidate, active, rejected …).",
}

TOPICS: dict[str, Topic] = {name: Topic(name, EVENT_MODELS[name], _DESCRIPTIONS[name]) for name in EVENT_MODELS}
# High-priority chat tasks get their own topic so they never wait behind a backlog of normal ones.
TOPICS["chat.requests.high"] = Topic("chat.requests.high", EVENT_MODELS["chat.requests"], "High-priority chat tasks, served first.")
# Documents above RAGLOOP_INGEST_LARGE_BYTES are moved here by the ingest worker, so a huge file
# is indexed beside the small ones instead of in front of them.
TOPICS["docs.ingest.large"] = Topic("docs.ingest.large", EVENT_MODELS["docs.ingest"], "Large documents, indexed on their own lane.")


def topic_for(event: Event) -> Topic:
    return TOPICS[event.topic()]


def all_topic_names(include_dlq: bool = True) -> list[str]:
    names = list(TOPICS)
    return names + [t.dlq for t in TOPICS.values()] if include_dlq else names


def resolve(name: str) -> Topic:
    try:
        return TOPICS[name]
    except KeyError:
        raise ValueError(f"unknown topic {name!r}; known topics: {', '.join(TOPICS)}") from None
