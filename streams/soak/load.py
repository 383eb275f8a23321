"""The mixed load: small documents (and deletes of some), chats with tiny answers, feedback on them.

Every request goes through the HTTP API, as a user's would. An answer of 2xx makes the request
*accepted* (recorded for the ledger); a 503, or no answer at all (the gateway is down), is retried
after a pause, the same document id or Idempotency-Key each time, so a retry can never be a second
request; any other 5xx, or a 503 without Retry-After, is a server error the ledger counts.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import BaseModel, Field

from streams.soak.ledger import Accepted, Ledger

WORDS = ("river", "lantern", "copper", "orchard", "harbor", "meadow", "signal", "granite", "willow", "ember", "summit", "canvas")


class Mix(BaseModel):
    """Relative weights of each request kind, and the size of what is sent."""

    document: float = 0.55
    delete: float = 0.08
    feedback: float = 0.33
    chat: float = 0.04
    words_per_document: int = Field(40, ge=1, description="Small: one chunk each.")
    max_new_tokens: int = Field(4, ge=1, description="Chats only need to finish, not to say much.")
    retry_s: float = Field(0.5, gt=0, description="Pause before a refused or unanswered request is sent again (at most Retry-After).")
    max_tries: int = Field(240, ge=1, description="A request still refused after this many tries is given up (not accepted).")
    timeout_s: float = 30.0


class Answer(BaseModel):
    """What one probe request got: its status (0: no answer) and Retry-After header."""

    request: str
    status: int
    retry_after: str | None

    @property
    def acceptable(self) -> bool:
        """Anything but a server error: 2xx/4xx, or a 503 that says when to come back."""
        return self.status != 0 and (self.status < 500 or (self.status == 503 and self.retry_after is not None))


class Load:
    """Sends the mix to `base_url` with `concurrency` requests in flight; `accepted` is what the ledger checks."""

    def __init__(self, base_url: str, *, tenant: str, mix: Mix | None = None, seed: int = 0, headers: dict[str, str] | None = None) -> None:
        self.base_url, self.tenant, self.mix = base_url, tenant, mix or Mix()
        self.rng = random.Random(seed)
        self.headers = headers or {}
        self.accepted: list[Accepted] = []
        self.ledger = Ledger()  # refused, server errors and unreachable are counted while sending
        self.sent = 0
        self._documents: list[str] = []  # indexable ids not deleted yet
        self._tasks: list[str] = []
        self._answers: list[Answer] | None = None  # set while probing

    async def run(self, *, events: int | None = None, seconds: float | None = None, concurrency: int = 8,
                  keep_going: Callable[[], bool] = lambda: False) -> None:
        """Send until `events` requests were tried, or `seconds` passed (whichever comes first), and
        for as long as `keep_going()` says so (a fault test: until every fault was injected)."""
        end = time.monotonic() + seconds if seconds is not None else float("inf")
        budget = events if events is not None else 10**12

        async def sender(client: httpx.AsyncClient) -> None:
            while keep_going() or (time.monotonic() < end and self.sent < budget):
                self.sent += 1
                await self._one(client)

        async with httpx.AsyncClient(base_url=self.base_url, timeout=self.mix.timeout_s, headers=self.headers) as client:
            await asyncio.gather(*(sender(client) for _ in range(concurrency)))

    async def probe(self) -> list[Answer]:
        """One try at each endpoint the load uses (and a task read), no retry: what the API answers right now.
        What it accepts is recorded like any other accepted request."""
        answers: list[Answer] = []
        single = Mix(**{**self.mix.model_dump(), "max_tries": 1})
        saved, self.mix = self.mix, single
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=self.mix.timeout_s, headers=self.headers) as client:
                self._answers = answers
                await self._document(client)
                await self._chat(client)
                if self._tasks:
                    await self._feedback(client)
                    await self._send(client, "GET", f"/v1/tasks/{self._tasks[-1]}")
        finally:
            self.mix, self._answers = saved, None
        return answers

    async def _one(self, client: httpx.AsyncClient) -> None:
        kinds = ["document", "delete", "feedback", "chat"]
        kind = self.rng.choices(kinds, weights=[getattr(self.mix, k) for k in kinds])[0]
        if kind == "delete" and len(self._documents) < 10:
            kind = "document"
        if kind == "feedback" and not self._tasks:
            kind = "chat"
        await getattr(self, f"_{kind}")(client)

    async def _document(self, client: httpx.AsyncClient) -> None:
        document_id, token = f"soak-{uuid.uuid4().hex[:16]}", f"tok{uuid.uuid4().hex[:12]}"
        text = " ".join([token, *self.rng.choices(WORDS, k=self.mix.words_per_document)]) + "."
        body = {"document_id": document_id, "tenant": self.tenant, "title": f"soak {token}", "text": text}
        if await self._send(client, "POST", "/v1/documents", json=body) is not None:
            self.accepted.append(Accepted(kind="document", id=document_id, tenant=self.tenant, token=token))
            self._documents.append(document_id)

    async def _delete(self, client: httpx.AsyncClient) -> None:
        document_id = self._documents.pop(self.rng.randrange(len(self._documents)))
        token = next(a.token for a in self.accepted if a.kind == "document" and a.id == document_id)
        if await self._send(client, "DELETE", f"/v1/documents/{document_id}") is not None:
            self.accepted.append(Accepted(kind="delete", id=document_id, tenant=self.tenant, token=token))

    async def _chat(self, client: httpx.AsyncClient) -> None:
        body = {"tenant": self.tenant, "messages": [{"role": "user", "content": f"What does the {self.rng.choice(WORDS)} mean?"}],
                "max_new_tokens": self.mix.max_new_tokens, "stream": False}
        answer = await self._send(client, "POST", "/v1/chat", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        if answer is not None:
            task_id = answer["task_id"]
            self.accepted.append(Accepted(kind="chat", id=task_id, tenant=self.tenant))
            self._tasks.append(task_id)

    async def _feedback(self, client: httpx.AsyncClient) -> None:
        body = {"task_id": self.rng.choice(self._tasks), "rating": self.rng.choice(["up", "down"])}
        answer = await self._send(client, "POST", "/v1/feedback", json=body)
        if answer is not None:
            self.accepted.append(Accepted(kind="feedback", id=answer["feedback_id"], tenant=self.tenant))

    async def _send(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """The JSON of a 2xx answer, or None once the request was refused for good (4xx, or too many tries)."""
        for _ in range(self.mix.max_tries):
            try:
                response = await client.request(method, path, **kwargs)
            except httpx.TransportError:
                self.ledger.unreachable += 1
                if self._answers is not None:
                    self._answers.append(Answer(request=f"{method} {path}", status=0, retry_after=None))
                await asyncio.sleep(self.mix.retry_s)  # the gateway is down (or restarting): try again shortly
                continue
            if self._answers is not None:
                self._answers.append(Answer(request=f"{method} {path.split('/soak-')[0]}", status=response.status_code,
                                            retry_after=response.headers.get("retry-after")))
            if response.is_success:
                return response.json()
            if response.status_code == 503 and "retry-after" in response.headers:
                self.ledger.refused += 1
                await asyncio.sleep(min(self.mix.retry_s, float(response.headers["retry-after"])))
                continue
            if response.status_code >= 500:
                self.ledger.server_errors += 1
                self.ledger.note(f"{method} {path}: {response.status_code} {response.text[:200]}")
                await asyncio.sleep(self.mix.retry_s)
                continue
            self.ledger.note(f"{method} {path}: refused {response.status_code} {response.text[:200]}")
            return None
        return None


def merge_sending(ledger: Ledger, load: Load) -> Ledger:
    """The observed ledger plus what was counted while sending."""
    ledger.refused, ledger.server_errors, ledger.unreachable = load.ledger.refused, load.ledger.server_errors, load.ledger.unreachable
    ledger.examples = [*load.ledger.examples, *ledger.examples][:20]
    return ledger

