"""The whole loop as a user drives it over HTTP: ingest → ask (cited, scored) → correct → retrain → ask again.

Every phase is timed and printed (`pytest -s` shows it), so the budgets in test_loop.py can be set
from what the loop really takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

PARAGRAPHS = {
    "observatory": ("The Veltrin Observatory", "The Veltrin Observatory sits on Mount Caldera at 4,200 metres. It was opened in 1987 and "
                    "houses a 3.5 metre reflecting telescope used mainly to survey comets and near-earth asteroids."),
    "bakery": ("Harbor Street Bakery", "Harbor Street Bakery is famous for its rye sourdough, baked every morning in a wood-fired "
               "oven that the founder, Ingrid Solberg, built by hand in 1952."),
    "river": ("The Ostra river", "The Ostra river flows 612 kilometres from the Kessel glacier to the Northern Sea, and its delta "
              "is a protected wetland that shelters more than two hundred species of migratory birds."),
}
# Invented facts no pretrained model can know; taught only through feedback corrections.
FACTS = [
    ("What is the capital of the planet Zorblax?", "The capital of Zorblax is Quenvale.", "quenvale"),
    ("Who invented the glimmerphone?", "The glimmerphone was invented by Odalys Brenck.", "brenck"),
    ("What colour is the moon of Tervane?", "The moon of Tervane is teal.", "teal"),
    ("What is the national dish of Mirovia?", "The national dish of Mirovia is plombek stew.", "plombek"),
    ("Which animal guards the Velmor gate?", "The Velmor gate is guarded by a silver heron.", "heron"),
]


@dataclass
class Asked:
    """What the loop asked and corrected, so a check can demand one eval result for each."""

    answers: dict[str, str] = field(default_factory=dict)  # task id → the model version that answered
    corrections: dict[str, str] = field(default_factory=dict)  # task id → feedback id of its correction


# What is not yet scored on eval.results (empty: everything asked so far is), read from the surface
# the deployment offers: the topic itself on Kafka, the gateway's /metrics in the one-process mode.
Unscored = Callable[[Asked], list[str]]


@dataclass
class Budget:
    """How long each wait may take before the loop fails, in seconds (measured: test_loop.py)."""

    healthy: float
    indexed: float
    retrain: float
    scored: float


class LoopClient:
    def __init__(self, base_url: str, wait_until: Callable[..., None], api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, timeout=360, headers=headers)  # above ?wait=true's 300 s
        self.wait_until = wait_until  # Processes.wait_until: polls a condition, failing at once if a role died
        self.asked = Asked()

    def ingest(self, doc_id: str, title: str, text: str) -> None:
        reply = self.http.post("/v1/documents", json={"id": doc_id, "title": title, "text": text})
        assert reply.status_code == 202, reply.text
        assert reply.json()["document_id"] == doc_id

    def wait_indexed(self, doc_ids: list[str], timeout: float) -> None:
        pending = set(doc_ids)

        def all_indexed() -> bool:
            for doc_id in list(pending):
                status = self.http.get(f"/v1/documents/{doc_id}").json()
                assert status["status"] != "failed", status
                if status["status"] == "indexed":
                    pending.discard(doc_id)
            return not pending

        self.wait_until(all_indexed, timeout=timeout, what=f"documents indexed: {pending}")

    def ask(self, question: str) -> dict[str, Any]:
        reply = self.http.post("/v1/chat", params={"wait": "true"}, json={"messages": [{"role": "user", "content": question}]})
        assert reply.status_code == 200, reply.text
        task = reply.json()
        assert task["status"] == "succeeded", task
        self.asked.answers[task["task_id"]] = task["result"]["model_version"]
        return task

    def correct(self, task_id: str, correction: str) -> None:
        reply = self.http.post("/v1/feedback", json={"task_id": task_id, "rating": "down", "correction": correction})
        assert reply.status_code == 202, reply.text
        self.asked.corrections[task_id] = reply.json()["feedback_id"]

    def models(self) -> list[dict[str, Any]]:
        return self.http.get("/v1/models").json()["models"]

    def active_model(self) -> dict[str, Any]:
        active = [m for m in self.models() if m["state"] == "active"]
        assert len(active) == 1, active
        return active[0]

    def wait_for_new_active_model(self, previous: str, timeout: float) -> dict[str, Any]:
        """Wait for the retrained adapter to pass its gate, then promote it by hand: a gated adapter first serves as
        a canary, and the canary's automatic promotion (which needs scored canary traffic) is tests/e2e/test_learning_loop.py's."""
        def gated() -> bool:
            models = self.models()
            rejected = [m for m in models if m["state"] == "rejected"]
            assert not rejected, f"the retrained adapter was rejected by the gate: {rejected}"
            return any(m["state"] in ("canary", "active") and m["version"] != previous for m in models)

        self.wait_until(gated, timeout=timeout, what="a retrained adapter to pass its gate", interval=2)
        new = next(m for m in self.models() if m["state"] in ("canary", "active") and m["version"] != previous)
        if new["state"] == "canary":
            reply = self.http.post(f"/v1/models/{new['version']}/promote", json={"reason": "the end-to-end test promotes its canary"})
            assert reply.status_code == 200, reply.text
        return self.active_model()

    def wait_scored(self, unscored: Unscored, timeout: float) -> None:
        """Every answer so far has its eval result, and every correction its re-score."""
        missing: list[str] = []

        def all_scored() -> bool:
            missing[:] = unscored(self.asked)
            return not missing

        try:
            self.wait_until(all_scored, timeout=timeout, what="eval.results for every answer and correction")
        except AssertionError as error:
            raise AssertionError(f"not scored: {missing}\n{error}") from None


class Phases:
    """Wall time of each phase of the loop, printed as it ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - started, 1)
        print(f"e2e phase {name}: {self.seconds[name]}s", flush=True)


def run_the_loop(client: LoopClient, unscored: Unscored, budget: Budget, phase: Phases) -> None:
    """Drive the loop, timing each phase."""
    with phase("ingest and index 3 documents"):
        for doc_id, (title, text) in PARAGRAPHS.items():
            client.ingest(doc_id, title, text)
        client.wait_indexed(list(PARAGRAPHS), timeout=budget.indexed)

    with phase("cited answer"):
        answer = client.ask("How long is the Ostra river?")
    citations = answer["result"]["citations"]
    assert citations and citations[0]["document_id"] == "river", citations
    assert {"document_id", "chunk_id", "text"} <= citations[0].keys()
    assert "612" in citations[0]["text"]

    base = client.active_model()
    assert base["version"].endswith("@base")
    with phase("5 answers by the base model, each corrected"):
        for question, correction, _ in FACTS:
            task = client.ask(question)
            assert task["result"]["model_version"] == base["version"]
            client.correct(task["task_id"], correction)

    with phase("6 answers and 5 corrections scored"):
        client.wait_scored(unscored, timeout=budget.scored)

    with phase("retrain, gate and promote"):
        new = client.wait_for_new_active_model(base["version"], timeout=budget.retrain)
    assert new["adapter_path"], new

    with phase("5 answers by the new adapter"):
        for question, _, keyword in FACTS:
            task = client.ask(question)
            assert task["result"]["model_version"] == new["version"]
            assert keyword in task["result"]["answer"].lower(), (question, task["result"]["answer"])

    with phase("all 11 answers and 5 corrections scored"):
        client.wait_scored(unscored, timeout=budget.scored)
