"""The agent's request and answer: what a worker passes to `RagAgent.answer` and gets back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from indexing.types import Chunk, SearchHit
from models.llm.base import ChatMessage

Evidence = Literal["found", "insufficient", "not_searched"]


class AgentQuery(BaseModel):
    question: str = Field(min_length=1)
    history: list[ChatMessage] = Field(default_factory=list, description="Earlier turns sent with the request; "
                                       "when empty, the stored turns of `conversation_id` are used.")
    tenant: str = "default"
    principals: list[str] = Field(default_factory=list, description="Who is asking: selects the restricted chunks "
                                  "(non-empty access lists) that retrieval may return.")
    retrieval: bool = True
    k: int = 4
    adapter: str | None = None
    max_new_tokens: int = 96
    conversation_id: str | None = Field(None, description="Memory key (LangGraph thread id); None keeps no memory.")
    turn_id: str | None = Field(None, description="Id of this turn (the task id): a redelivered task replaces "
                                "its turn in memory instead of adding it twice.")
    tool: str | None = Field(None, description="Use this registered tool instead of letting the router choose.")
    images: list[str] = Field(default_factory=list, description="Images attached to the request (base64 or `data:` URLs): "
                              "the router sends them to the image search tool, and an engine that `accepts_images` is shown them.")


class AgentAnswer(BaseModel):
    answer: str
    hits: list[SearchHit] = Field(description="The context passages, in prompt order: `[n]` is hits[n-1].")
    prompt: list[ChatMessage]
    usage: dict[str, int]
    timings_ms: dict[str, float]
    cited: list[str] = Field(default_factory=list, description="Chunk ids the answer's `[n]` markers cite, in citation order.")
    route: str = "retrieve"
    tool: str | None = None
    queries: list[str] = Field(default_factory=list, description="Search queries tried, the original first.")
    grades: list[float] = Field(default_factory=list, description="Relevance of the last search's hits.")
    evidence: Evidence = "not_searched"
    history_turns: int = Field(0, description="Earlier exchanges shown to the model.")


STATE_TYPES: tuple[type, ...] = (AgentQuery, ChatMessage, SearchHit, Chunk)
"""The pydantic types the graph state holds: the checkpoint serializer may restore exactly these."""
