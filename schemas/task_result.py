"""What a succeeded chat task keeps: the response it published, and how the agent reached it.

The agent writes a `TaskOutcome` once, when it finishes a task; the task row stores it in its JSON
`result` column (`TaskOutcomeColumn` converts at that boundary) and every reader — the gateway's
views, the task event stream, callbacks, the CLI, the eval and trainer workers — gets it back typed.
The response is the one copy of the answer: `answer`, `citations` and the rest are read from it,
so no fact is stored twice, and a redelivered request re-publishes exactly the response sent first.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from schemas.events import ChatResponse, Citation


class TaskOutcome(BaseModel):
    """A succeeded task's result: `TaskOutcome(response=response, cited=…, route=…, evidence=…)`."""

    # Rows written before this model also carried each response field beside the response: ignored.
    model_config = ConfigDict(extra="ignore")
    response: ChatResponse = Field(description="What was published on chat.responses; re-published on a redelivery.")
    cited: list[str] = Field(default_factory=list, description="Chunk ids the answer cites with [n].")
    route: str = Field("", description="The agent graph's branch: retrieve, tool or direct.")
    evidence: str = Field("not_searched", description="found, insufficient or not_searched.")
    token_events: int = Field(0, ge=0, description="Token deltas published on chat.tokens; the event stream waits for them.")

    @property
    def answer(self) -> str:
        return self.response.answer

    @property
    def citations(self) -> list[Citation]:
        return self.response.citations

    @property
    def model_version(self) -> str:
        return self.response.model_version

    @property
    def timings_ms(self) -> dict[str, float]:
        return self.response.timings_ms

    @property
    def usage(self) -> dict[str, int]:
        return self.response.usage

    def summary(self) -> dict[str, Any]:
        """Everything but the response's prompt and envelope, as JSON: what a task's event stream ends with."""
        return {"answer": self.answer, "citations": [c.model_dump(mode="json") for c in self.citations],
                "model_version": self.model_version, "cited": self.cited, "route": self.route, "evidence": self.evidence,
                "timings_ms": self.timings_ms, "usage": self.usage, "token_events": self.token_events}


class TaskOutcomeColumn(TypeDecorator[TaskOutcome]):
    """A JSON column holding a `TaskOutcome`: validated on the way out, so no reader sees a bare dict."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: TaskOutcome | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else value.model_dump(mode="json")

    def process_result_value(self, value: dict[str, Any] | None, dialect: Dialect) -> TaskOutcome | None:
        return None if value is None else TaskOutcome.model_validate(value)
