"""The soak ledger: every accepted request against the effect it must have had, exactly once.

Effects, per kind of request:
- a document accepted for indexing: its row is `indexed` and the index holds exactly `chunks` of
  its chunks (more = duplicated chunks, none = lost);
- a document accepted for deletion: its row is `deleted` and the index holds none of its chunks;
- a chat: its task is terminal, a succeeded one has its eval row, and at most one distinct answer
  was published on `chat.responses` (two = two agents both generated: a duplicated effect);
- feedback: exactly one feedback row with the accepted `feedback_id`.
Lost = accepted but no effect by the drain deadline; stuck = still queued/indexing/running then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import col, select

from indexing.backends.base import SearchBackend
from schemas.tables import TERMINAL_TASK_STATES, EvalRecord, FeedbackRecord
from streams.stores import Stores

Kind = Literal["document", "delete", "chat", "feedback"]
KINDS: tuple[Kind, ...] = ("document", "delete", "chat", "feedback")
SETTLED_DOCUMENT = ("indexed", "failed", "deleted")


class Accepted(BaseModel):
    """One request the API accepted (2xx): what it was, and how to find its effect."""

    kind: Kind
    id: str = Field(description="document_id, task_id or feedback_id")
    tenant: str
    token: str = Field("", description="A word only this document contains, to count its chunks in the index.")


class Line(BaseModel):
    accepted: int = 0
    effects: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    failed: int = Field(0, description="Terminal as failed (a document or task that ended with an error): an effect, shown apart.")


class Ledger(BaseModel):
    """The figures a soak or fault run prints; `clean` is the verdict (0 lost, 0 duplicated, 0 stuck)."""

    lines: dict[str, Line] = Field(default_factory=lambda: {str(kind): Line() for kind in KINDS})
    refused: int = Field(0, description="503 answers (back-pressure or a dependency down): not accepted, retried.")
    server_errors: int = Field(0, description="5xx answers other than 503, and 503s without Retry-After: each one is a bug.")
    unreachable: int = Field(0, description="Requests that got no answer (the gateway was down): not accepted, retried.")
    examples: list[str] = Field(default_factory=list, description="The first few lost, duplicated or stuck ids, with why.")

    def total(self) -> Line:
        return Line(**{name: sum(getattr(line, name) for line in self.lines.values()) for name in Line.model_fields})

    @property
    def clean(self) -> bool:
        total = self.total()
        return total.lost == 0 and total.duplicated == 0 and total.stuck == 0

    def note(self, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(what)

    def render(self) -> str:
        rows = [f"{'':10}{'accepted':>10}{'effects':>10}{'lost':>8}{'dup':>6}{'stuck':>7}{'failed':>8}"]
        for name, line in [*self.lines.items(), ("total", self.total())]:
            rows.append(f"{name:10}{line.accepted:>10}{line.effects:>10}{line.lost:>8}{line.duplicated:>6}{line.stuck:>7}{line.failed:>8}")
        total = self.total()
        rate = (lambda n: f"{100 * n / total.accepted:.2f}%") if total.accepted else (lambda n: "-")
        rows.append(f"rates: lost {rate(total.lost)}, duplicated {rate(total.duplicated)}, stuck {rate(total.stuck)}; "
                    f"refused (503) {self.refused}, server errors {self.server_errors}, unreachable {self.unreachable}")
        rows.extend(f"  {example}" for example in self.examples)
        rows.append("CLEAN: 0 lost, 0 duplicated, 0 stuck" if self.clean else "NOT CLEAN")
        return "\n".join(rows)


# Distinct answers published on chat.responses per task id; None where the broker cannot be read back (embedded).
ResponseCounter = Callable[[], dict[str, int] | None]


def _document(ledger: Ledger, stores: Stores, search: SearchBackend, item: Accepted, want: str) -> None:
    line = ledger.lines["delete" if want == "deleted" else "document"]
    row = stores.documents.get_document(item.id)
    hits = [h for h in search.search_bm25(tenant=item.tenant, text=item.token, k=50) if h.chunk.document_id == item.id] if item.token else []
    distinct = {h.chunk.id for h in hits}
    if len(distinct) < len(hits):
        line.duplicated += 1
        ledger.note(f"{item.kind} {item.id}: {len(hits)} hits for {len(distinct)} chunk ids")
        return
    if row is None:
        line.lost += 1
        ledger.note(f"{item.kind} {item.id}: no row")
    elif row.status not in SETTLED_DOCUMENT:
        line.stuck += 1
        ledger.note(f"{item.kind} {item.id}: {row.status}")
    elif want == "deleted":
        if row.status == "deleted" and not hits:
            line.effects += 1
        else:
            line.lost += 1
            ledger.note(f"delete {item.id}: status {row.status}, {len(hits)} chunks still searchable")
    elif row.status == "failed":
        line.failed += 1
        line.effects += 1
        ledger.note(f"document {item.id}: failed ({row.error})")
    elif row.status == "indexed" and row.chunks > 0 and len(hits) == row.chunks:
        line.effects += 1
    elif len(hits) > row.chunks:
        line.duplicated += 1
        ledger.note(f"document {item.id}: {len(hits)} chunks searchable, row says {row.chunks}")
    else:
        line.lost += 1
        ledger.note(f"document {item.id}: status {row.status}, {len(hits)} of {row.chunks} chunks searchable")


def _chat(ledger: Ledger, stores: Stores, item: Accepted, answers: dict[str, int] | None, evaluated: set[str]) -> None:
    line = ledger.lines["chat"]
    task = stores.tasks.get_task(item.id)
    if task is None:
        line.lost += 1
        ledger.note(f"chat {item.id}: no task row")
    elif task.status not in TERMINAL_TASK_STATES:
        line.stuck += 1
        ledger.note(f"chat {item.id}: {task.status} (attempts {task.attempts})")
    elif answers is not None and answers.get(item.id, 0) > 1:
        line.duplicated += 1
        ledger.note(f"chat {item.id}: {answers[item.id]} different answers published")
    elif task.status == "succeeded" and item.id not in evaluated:
        line.lost += 1
        ledger.note(f"chat {item.id}: succeeded without an eval row")
    else:
        line.effects += 1
        if task.status != "succeeded":
            line.failed += 1
            ledger.note(f"chat {item.id}: {task.status} ({task.error})")


def _present(stores: Stores, key: Any, ids: list[str], batch: int = 500) -> set[str]:
    """Which of `ids` have a row (the ledger only reads: one query per `batch` ids)."""
    found: set[str] = set()
    with stores.db.session() as session:
        for start in range(0, len(ids), batch):
            found.update(session.exec(select(key).where(col(key).in_(ids[start:start + batch]))).all())
    return found


def observe(accepted: Iterable[Accepted], stores: Stores, search: SearchBackend, answers: dict[str, int] | None = None) -> Ledger:
    """One look at every accepted request's effect (blocking: run it in a thread)."""
    ledger = Ledger()
    items = list(accepted)
    deleted = {item.id for item in items if item.kind == "delete"}
    feedback_ids = [item.id for item in items if item.kind == "feedback"]
    stored = _present(stores, FeedbackRecord.id, feedback_ids)
    evaluated = _present(stores, EvalRecord.task_id, [item.id for item in items if item.kind == "chat"])
    for item in items:
        ledger.lines[item.kind].accepted += 1
        if item.kind == "document":
            # A delete accepted after this ingest wins: the ingest's effect is then the delete's.
            if item.id in deleted:
                ledger.lines["document"].effects += 1
                continue
            _document(ledger, stores, search, item, "indexed")
        elif item.kind == "delete":
            _document(ledger, stores, search, item, "deleted")
        elif item.kind == "chat":
            _chat(ledger, stores, item, answers, evaluated)
        elif item.id in stored:
            ledger.lines["feedback"].effects += 1
        else:
            ledger.lines["feedback"].lost += 1
            ledger.note(f"feedback {item.id}: no row")
    return ledger


def _look(accepted: list[Accepted], stores: Stores, search: Callable[[], SearchBackend], answers: ResponseCounter) -> Ledger:
    return observe(accepted, stores, search(), answers())


async def drained(accepted: list[Accepted], stores: Stores, search: Callable[[], SearchBackend], *, deadline_s: float,
                  answers: ResponseCounter = lambda: None, poll_s: float = 2.0) -> Ledger:
    """Observe until nothing is lost or stuck, or nothing changed for `deadline_s` (at most 4 × `deadline_s`
    in all); the last look is the ledger. A slow machine that still makes progress is not "stuck".

    `search` gives the index to look in, each time: an embedded index must be opened afresh to see
    what the serving process wrote since."""
    start = last_change = time.monotonic()
    settled = -1
    while True:
        ledger = await asyncio.to_thread(_look, accepted, stores, search, answers)
        total = ledger.total()
        now = time.monotonic()
        if total.effects != settled:
            settled, last_change = total.effects, now
        if (total.lost == 0 and total.stuck == 0) or now - last_change >= deadline_s or now - start >= 4 * deadline_s:
            return ledger
        await asyncio.sleep(poll_s)  # the effects are someone else's work: look again shortly
