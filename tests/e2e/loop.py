"""The whole loop as a user drives it over HTTP: ingest → ask (cited) → correct → retrain → ask again."""

from __future__ import annotations

import time
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


class LoopClient:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, timeout=900, headers=headers)

    def ingest(self, doc_id: str, title: str, text: str) -> None:
        reply = self.http.post("/v1/documents", json={"id": doc_id, "title": title, "text": text})
        assert reply.status_code == 202, reply.text
        assert reply.json()["document_id"] == doc_id

    def wait_indexed(self, doc_ids: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        pending = set(doc_ids)
        while pending and time.monotonic() < deadline:
            for doc_id in list(pending):
                status = self.http.get(f"/v1/documents/{doc_id}").json()
                assert status["status"] != "failed", status
                if status["status"] == "indexed":
                    pending.discard(doc_id)
            time.sleep(0.3)
        assert not pending, f"not indexed in {timeout}s: {pending}"

    def ask(self, question: str) -> dict[str, Any]:
        reply = self.http.post("/v1/chat", params={"wait": "true"}, json={"messages": [{"role": "user", "content": question}]})
        assert reply.status_code == 200, reply.text
        task = reply.json()
        assert task["status"] == "succeeded", task
        return task

    def correct(self, task_id: str, correction: str) -> None:
        reply = self.http.post("/v1/feedback", json={"task_id": task_id, "rating": "down", "correction": correction})
        assert reply.status_code == 202, reply.text

    def active_model(self) -> dict[str, Any]:
        models = self.http.get("/v1/models").json()["models"]
        active = [m for m in models if m["state"] == "active"]
        assert len(active) == 1, models
        return active[0]

    def wait_for_new_active_model(self, previous: str, timeout: float = 1200) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = self.active_model()
            if active["version"] != previous:
                return active
            rejected = [m for m in self.http.get("/v1/models").json()["models"] if m["state"] == "rejected"]
            assert not rejected, f"the retrained adapter was rejected by the gate: {rejected}"
            time.sleep(2)
        raise AssertionError(f"no new active model within {timeout}s")


def run_the_loop(client: LoopClient) -> None:
    for doc_id, (title, text) in PARAGRAPHS.items():
        client.ingest(doc_id, title, text)
    client.wait_indexed(list(PARAGRAPHS))

    answer = client.ask("How long is the Ostra river?")
    citations = answer["result"]["citations"]
    assert citations and citations[0]["document_id"] == "river", citations
    assert {"document_id", "chunk_id", "text"} <= citations[0].keys()
    assert "612" in citations[0]["text"]

    base = client.active_model()
    assert base["version"].endswith("@base")
    for question, correction, _ in FACTS:
        task = client.ask(question)
        assert task["result"]["model_version"] == base["version"]
        client.correct(task["task_id"], correction)

    new = client.wait_for_new_active_model(base["version"])
    assert new["adapter_path"], new
    for question, _, keyword in FACTS:
        task = client.ask(question)
        assert task["result"]["model_version"] == new["version"]
        assert keyword in task["result"]["answer"].lower(), (question, task["result"]["answer"])
