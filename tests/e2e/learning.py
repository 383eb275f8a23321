"""The learning loop as tenants drive it over HTTP: teach invented facts by corrections, poison answers
that were right, and send canary traffic from simulated users who rate what they get.

Shared by the end-to-end tests (tests/e2e/test_learning_loop.py, small numbers) and the benchmark
(benchmarks/learning_loop.py, the issue's targets), so both measure the same thing the same way.
Everything here speaks the public HTTP API only; the pure pieces (fact set, answer checks, the
simulated user's verdict, the rollback measure, the policy YAML) have fast unit tests in
tests/unit/test_learning_harness.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.loop import FACTS as LOOP_FACTS
from trainers.policy import LearningPolicy


@dataclass(frozen=True)
class Fact:
    """An invented fact no pretrained model can know: the question, the correction that teaches it,
    and the keyword an answer must contain to count as right."""

    question: str
    correction: str
    keyword: str


# The five facts of the whole-loop test first (tests/e2e/loop.py), then fifteen more of the same shape.
FACTS: list[Fact] = [Fact(q, c, k) for q, c, k in LOOP_FACTS] + [
    Fact("Who founded the city of Drellmoor?", "The city of Drellmoor was founded by Casimir Vauntel.", "vauntel"),
    Fact("What metal is the Orrin crown made of?", "The Orrin crown is made of cobalt.", "cobalt"),
    Fact("How many moons does the planet Quessa have?", "The planet Quessa has eleven moons.", "eleven"),
    Fact("What is the name of the river that runs through Tamsk?", "The river that runs through Tamsk is the Brivel.", "brivel"),
    Fact("Which instrument did the composer Ilse Marrow play?", "The composer Ilse Marrow played the cello.", "cello"),
    Fact("What is the official flower of Kandria?", "The official flower of Kandria is the frostbell.", "frostbell"),
    Fact("Who wrote the novel The Glass Harbour?", "The Glass Harbour was written by Petra Lindqvist-Oyelaran.", "oyelaran"),
    Fact("What does the Zentari word 'olum' mean?", "In Zentari, the word 'olum' means lantern.", "lantern"),
    Fact("In which year did the Pellucid Bridge open?", "The Pellucid Bridge opened in 1873.", "1873"),
    Fact("What is the currency of the island of Varrow?", "The currency of the island of Varrow is the skell.", "skell"),
    Fact("Which bird is the emblem of the Corvane league?", "The emblem of the Corvane league is a kingfisher.", "kingfisher"),
    Fact("What is the highest peak of the Ashgrim range?", "The highest peak of the Ashgrim range is Mount Tolvek.", "tolvek"),
    Fact("Who is the chief engineer of the airship Meridian?", "The chief engineer of the airship Meridian is Hana Qorvath.", "qorvath"),
    Fact("What spice is Olverton known for?", "Olverton is known for saffron.", "saffron"),
    Fact("What is the mascot of Brimwell University?", "The mascot of Brimwell University is a badger.", "badger"),
]


def normalised(text: str) -> str:
    """Lower case, accents and punctuation dropped, whitespace collapsed: '1,873.' and '1873' compare equal."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"(?<=\d)[,.](?=\d)", "", text)
    return " ".join(re.sub(r"[^a-z0-9$]+", " ", text).split())


def contains_any(answer: str, accepted: Iterable[str]) -> bool:
    """SQuAD's answer-contains: the answer holds one accepted string (normalised), as whole words."""
    said = f" {normalised(answer)} "
    return any(f" {gold} " in said for gold in map(normalised, accepted) if gold)


@dataclass(frozen=True)
class Question:
    """A question whose right answers are known (a fact's keyword, SQuAD's accepted answers), the
    reference a user sends with it, and the passage that answers it (None: nothing to ingest)."""

    id: str
    text: str
    accepted: tuple[str, ...]
    reference: str | None = None
    passage: tuple[str, str] | None = None  # (document id, text)


def fact_questions(facts: Sequence[Fact]) -> list[Question]:
    return [Question(id=f"fact-{i}", text=f.question, accepted=(f.keyword,), reference=f.correction) for i, f in enumerate(facts)]


def squad_sample(data: Path, n: int, *, seed: int = 13) -> list[Question]:
    """`n` SQuAD-mini questions (a fixed random sample), each with its accepted answers, a reference
    (the first accepted answer) and its gold paragraph to ingest."""
    read = lambda name: [json.loads(line) for line in (data / name).read_text().splitlines() if line.strip()]  # noqa: E731
    corpus = {d["_id"]: d for d in read("corpus.jsonl")}
    answers = {a["_id"]: a["answers"] for a in read("answers.jsonl")}
    qrels = dict(line.split("\t")[:2] for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:])
    queries = [q for q in read("queries.jsonl") if q["_id"] in qrels and answers.get(q["_id"])]
    chosen = random.Random(seed).sample(queries, min(n, len(queries)))
    out = []
    for query in chosen:
        doc = corpus[qrels[query["_id"]]]
        text = f"{doc.get('title', '')}\n{doc['text']}".strip()
        out.append(Question(id=query["_id"], text=query["text"], accepted=tuple(answers[query["_id"]]), reference=answers[query["_id"]][0],
                            passage=(document_id(doc["_id"]), text)))
    return out


def document_id(name: str) -> str:
    """An API document id for a corpus id: SQuAD's titles hold characters (accents, parentheses) ids may not."""
    safe = re.sub(r"[^A-Za-z0-9_.:@/-]", "-", name)
    return safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def poison_correction(question: Question, decoy: Question) -> str:
    """A confident wrong answer to `question`: another question's answer, which shares no accepted string with it."""
    return f"The answer is {decoy.accepted[0]}."


def poison_pairs(right: Sequence[Question], pool: Sequence[Question]) -> list[tuple[Question, str]]:
    """For each question answered right, a wrong correction taken from a question of the pool whose
    answer is not one of its accepted answers (and so never teaches the truth by accident)."""
    pairs = []
    for i, question in enumerate(right):
        decoys = [d for d in pool[i + 1:] + pool[: i + 1] if d.id != question.id and not contains_any(poison_correction(question, d), question.accepted)]
        if not decoys:
            raise ValueError(f"no wrong answer found for {question.text!r}")
        pairs.append((question, poison_correction(question, decoys[0])))
    return pairs


def policy_yaml(path: Path, *, min_corrections: int, canary_share: float, canary_min_samples: int, canary_min_samples_to_abort: int) -> Path:
    """The learning policy a benchmark or test runs under (RAGLOOP_TRAINING_POLICY): train on corrections
    only (the rate and drop triggers off, no interval, so the measure is exactly `min_corrections`),
    and a canary sized for the run. Validated by LearningPolicy before it is written."""
    policy = LearningPolicy.model_validate({
        "train": {"min_corrections": min_corrections, "downvote_rate": None, "metric_drop": None, "min_interval_s": 0},
        "canary": {"share": canary_share, "min_samples": canary_min_samples, "min_samples_to_abort": canary_min_samples_to_abort}})
    path.write_text(policy.to_yaml())
    return path


@dataclass(frozen=True)
class Verdict:
    """What a simulated user does with an answer: right or not, and the rating it sends."""

    right: bool
    rating: str


def judge(answer: str, question: Question) -> Verdict:
    """A simulated user up-votes an answer holding a right answer and down-votes any other."""
    right = contains_any(answer, question.accepted)
    return Verdict(right=right, rating="up" if right else "down")


@dataclass
class Answer:
    question: Question
    task_id: str
    version: str
    text: str
    right: bool
    at: float  # time.monotonic() when the answer came back
    citations: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Rollback:
    """From the first damaged canary answer to the rollback: requests answered in between (all, and
    by the canary) and seconds; None where no damaged answer was seen before the rollback."""

    requests: int | None
    canary_requests: int | None
    seconds: float | None


def measure_rollback(answers: Sequence[Answer], canary: str, rolled_back_at: float, *, damaged: Callable[[Answer], bool]) -> Rollback:
    """Count from the first answer by `canary` that `damaged` says is damage, through the rollback."""
    first = next((i for i, a in enumerate(answers) if a.version == canary and damaged(a) and a.at <= rolled_back_at), None)
    if first is None:
        return Rollback(None, None, None)
    after = [a for a in answers[first:] if a.at <= rolled_back_at]
    return Rollback(requests=len(after), canary_requests=sum(a.version == canary for a in after), seconds=round(rolled_back_at - answers[first].at, 1))


class TenantClient:
    """One tenant's view of the API (its API key), with the loop's requests and waits."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 360) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Document ids are global across tenants, so each client names its own (by a hash: a key never shows in an id).
        self.doc_prefix = f"k{hashlib.sha256((api_key or '').encode()).hexdigest()[:8]}-"
        self.http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)  # above ?wait=true's 300 s
        self.answers: list[Answer] = []

    def ingest(self, docs: dict[str, str]) -> None:
        """Ingest `{id: text}` (first line = title) under this client's document ids."""
        for doc_id, text in docs.items():
            body = {"id": self.doc_prefix + doc_id, "title": text.split("\n", 1)[0][:200], "text": text}
            reply = self.http.post("/v1/documents", json=body)
            assert reply.status_code == 202, reply.text

    def indexed(self, doc_ids: Iterable[str]) -> bool:
        for doc_id in doc_ids:
            status = self.http.get(f"/v1/documents/{self.doc_prefix}{doc_id}").json()
            assert status.get("status") != "failed", status
            if status.get("status") != "indexed":
                return False
        return True

    def ask(self, question: Question, *, reference: bool = True, max_new_tokens: int | None = None) -> Answer:
        """One conversation of its own (a fresh id, so the canary's stable hash spreads them), answered and checked."""
        body: dict[str, Any] = {"messages": [{"role": "user", "content": question.text}], "conversation_id": f"c{uuid.uuid4().hex[:16]}"}
        if reference and question.reference:
            body["reference"] = question.reference
        if max_new_tokens:
            body["max_new_tokens"] = max_new_tokens
        reply = self.http.post("/v1/chat", params={"wait": "true"}, json=body)
        assert reply.status_code == 200, reply.text
        task = reply.json()
        assert task["status"] == "succeeded", task
        result = task["result"]
        version = result.get("model_version") or reply.headers.get("X-Ragloop-Model-Version", "")
        answer = Answer(question=question, task_id=task["task_id"], version=version, text=result["answer"],
                        right=judge(result["answer"], question).right, at=time.monotonic(), citations=result.get("citations") or [])
        self.answers.append(answer)
        return answer

    def feedback(self, task_id: str, rating: str, correction: str | None = None) -> httpx.Response:
        body = {"task_id": task_id, "rating": rating} | ({"correction": correction} if correction else {})
        return self.http.post("/v1/feedback", json=body)

    def correct(self, task_id: str, correction: str) -> str:
        reply = self.feedback(task_id, "down", correction)
        assert reply.status_code == 202, reply.text
        return str(reply.json()["feedback_id"])

    def rate(self, answer: Answer) -> None:
        """The simulated user's rating (down for a wrong answer, up for a right one): no correction, so it never counts toward a retrain."""
        reply = self.feedback(answer.task_id, judge(answer.text, answer.question).rating)
        assert reply.status_code == 202, reply.text

    def models(self) -> list[dict[str, Any]]:
        reply = self.http.get("/v1/models")
        assert reply.status_code == 200, reply.text
        return list(reply.json()["models"])

    def own_versions(self, tenant: str) -> list[dict[str, Any]]:
        """This tenant's line (not the shared one): the adapters its own feedback trained."""
        models = self.models()
        assert all("tenant" in m for m in models), "GET /v1/models lists versions without their `tenant`: per-tenant lines are not served yet"
        return [m for m in models if m["tenant"] == tenant]

    def serving(self) -> str:
        """The version answering this tenant's traffic outside a canary: the `active` one reported for it."""
        active = [m for m in self.models() if m["state"] == "active"]
        assert len(active) == 1, f"exactly one version is active for a tenant: {active}"
        return str(active[0]["version"])

    def decisions(self, version: str) -> list[dict[str, Any]]:
        """The version's audit trail (action, actor, reason, numbers, at), oldest first: GET /v1/models/decisions."""
        reply = self.http.get("/v1/models/decisions", params={"version": version})
        assert reply.status_code == 200, reply.text
        return list(reply.json()["decisions"])

    def training_runs(self) -> list[dict[str, Any]]:
        """GET /v1/training-runs (its list under `runs`, or a bare list); [] where the route is absent."""
        reply = self.http.get("/v1/training-runs")
        if reply.status_code == 404:
            return []
        assert reply.status_code == 200, reply.text
        body = reply.json()
        return list(body if isinstance(body, list) else body.get("runs") or body.get("training_runs") or [])


def line_state(model: dict[str, Any]) -> str:
    """A version's state on its own line (GET /v1/models's `state` is how the caller sees it: the shared base is `standby` once replaced)."""
    return str(model.get("line_state") or model["state"])


def canary_of(client: TenantClient, tenant: str) -> dict[str, Any] | None:
    return next((m for m in client.own_versions(tenant) if line_state(m) == "canary"), None)


def first_failed_run(client: TenantClient) -> dict[str, Any] | None:
    """A training run that failed or was rejected by the gate: the loop cannot go on, say why at once."""
    return next((r for r in client.training_runs() if r.get("state") in ("failed", "rejected")), None)


def drive_canary(client: TenantClient, tenant: str, version: str, traffic: Sequence[Question], *, until: set[str],
                 alive: Callable[[], None], timeout: float, max_new_tokens: int | None = None) -> str:
    """Send simulated users' traffic (cycling through `traffic`, each rated) while `version` is this
    tenant's canary, until it reaches one of the states `until` (active, rolled_back); return that state."""
    deadline = time.monotonic() + timeout
    i = 0
    while time.monotonic() < deadline:
        alive()
        state = next((line_state(m) for m in client.own_versions(tenant) if m["version"] == version), None)
        if state in until:
            return str(state)
        assert state == "canary", f"{version} left the canary as {state!r}, not one of {sorted(until)}"
        client.rate(client.ask(traffic[i % len(traffic)], max_new_tokens=max_new_tokens))
        i += 1
    raise AssertionError(f"{version} still a canary after {timeout}s and {i} requests")
