"""The serving prompt. Training builds its examples from the prompts recorded here at serve time,
so an adapter learns in exactly the format it will be asked in; keep it a pure function of its inputs."""

from __future__ import annotations

from collections.abc import Sequence

from indexing.types import SearchHit
from models.llm.base import ChatMessage

SYSTEM_PROMPT = (
    "You are ragloop, a concise assistant. Answer the question in one or two sentences. "
    "Use the numbered context passages when they contain the answer and cite them like [1]. "
    "If neither the context nor what you know answers it, say that you don't know."
)
# Shown when a search ran and found nothing that matches, so the model can say the evidence is missing.
NO_PASSAGES = "(no passage in the knowledge base matches the question)"
WEAK_PASSAGES = "(these passages do not seem to match the question; if they do not answer it, say so)"


def format_context(hits: Sequence[SearchHit]) -> str:
    return "\n".join(f"[{n}] {hit.chunk.title + ': ' if hit.chunk.title else ''}{hit.chunk.text}" for n, hit in enumerate(hits, 1))


def build_prompt(question: str, hits: Sequence[SearchHit], history: Sequence[ChatMessage] = (), *,
                 evidence: str = "found", tool_text: str = "") -> list[ChatMessage]:
    """System, earlier turns, then the question under its context: the passages (numbered for
    `[n]` citations), a tool's text result, and a note when a search found nothing relevant
    (`evidence="insufficient"`). Without any context the question is asked bare."""
    parts = [format_context(hits)] if hits else []
    if tool_text:
        parts.append(tool_text)
    if evidence == "insufficient":
        parts.append(WEAK_PASSAGES if hits else NO_PASSAGES)
    user = f"Context:\n{chr(10).join(parts)}\n\nQuestion: {question}" if parts else question
    return [ChatMessage(role="system", content=SYSTEM_PROMPT), *history, ChatMessage(role="user", content=user)]
