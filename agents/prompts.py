"""The serving prompt. Training builds its examples from the prompts recorded here at serve time,
so an adapter learns in exactly the format it will be asked in."""

from __future__ import annotations

from collections.abc import Sequence

from indexing.types import SearchHit
from models.llm.base import ChatMessage

SYSTEM_PROMPT = (
    "You are ragloop, a concise assistant. Answer the question in one or two sentences. "
    "Use the numbered context passages when they contain the answer and cite them like [1]. "
    "If neither the context nor what you know answers it, say that you don't know."
)


def format_context(hits: Sequence[SearchHit]) -> str:
    return "\n".join(f"[{n}] {hit.chunk.title + ': ' if hit.chunk.title else ''}{hit.chunk.text}" for n, hit in enumerate(hits, 1))


def build_prompt(question: str, hits: Sequence[SearchHit], history: Sequence[ChatMessage] = ()) -> list[ChatMessage]:
    user = f"Context:\n{format_context(hits)}\n\nQuestion: {question}" if hits else question
    return [ChatMessage(role="system", content=SYSTEM_PROMPT), *history, ChatMessage(role="user", content=user)]
