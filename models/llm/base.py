"""The contract every LLM engine meets (transformers on CPU, vLLM, remote OpenAI-compatible).

Agents and trainers code against :class:`LLMEngine` only, so a worker can swap the backend by
configuration. ``adapter`` names a LoRA adapter previously given to ``load_adapter``;
``None`` always means the base weights. An engine whose model takes images says so with
``accepts_images``; only then does a caller put images in ``GenerationParams.images``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field


class ChatMessage(BaseModel):
    """One turn of a conversation, in the role vocabulary shared by chat templates."""

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationParams(BaseModel):
    """Decoding settings; the defaults are greedy and short, what RAG answers and gates want."""

    max_new_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)  # 0 means greedy
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)  # text ends before the first stop string
    images: list[str] = Field(default_factory=list, description="`data:image/…;base64,` URLs shown with the last user "
                              "message, to an engine that `accepts_images` (a remote vision model); others ignore them.")


class Generation(BaseModel):
    """A finished answer with its token accounting and which adapter produced it."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    adapter: str | None
    finish_reason: Literal["stop", "length"]


@runtime_checkable
class LLMEngine(Protocol):
    """Chat generation with hot-swappable LoRA adapters over one resident base model."""

    @property
    def name(self) -> str: ...

    @property
    def accepts_images(self) -> bool: ...

    def generate(
        self,
        messages: list[ChatMessage],
        params: GenerationParams | None = None,
        *,
        adapter: str | None = None,
    ) -> Generation: ...

    def stream(
        self,
        messages: list[ChatMessage],
        params: GenerationParams | None = None,
        *,
        adapter: str | None = None,
    ) -> Iterator[str]: ...

    def load_adapter(self, name: str, path: Path) -> None: ...

    def adapters(self) -> list[str]: ...
