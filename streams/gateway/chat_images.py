"""Images in chat messages: OpenAI-style content parts on `/v1/chat` and `/v1/chat/completions`, checked
at the door and handed on with the question.

A message's `content` may be a string or a list of parts (`schemas/content_parts.py`): `text` and
`image_url` with a `data:image/…;base64,` URL or an `https://` URL. The question's images (those of the
last message) are checked and, for `https:`, fetched through URL ingestion's SSRF guard and fetcher
(`chat_image_check.py`); they travel on `ChatRequest.images` as data URLs, so the agent searches the
tenant's images and documents by them and a remote vision engine (RAGLOOP_LLM_VISION) is shown them.
Each image is also noted in its turn's text. Anything refused is a 422 (413 for size) saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from schemas.content_parts import ImagePart, TextPart
from schemas.events import ChatRequest, ChatTurn, NonEmpty
from schemas.settings import Settings
from streams.gateway.chat_image_check import check_data_url, fetch_https_image, guard_https_url

MAX_IMAGES = ChatRequest.model_fields["images"].metadata[0].max_length


class ChatTurnIn(BaseModel):
    """A chat message as OpenAI clients send it: text, or a list of text and image parts."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: NonEmpty | list[TextPart | ImagePart] = Field(description="Text, or parts: `text` and `image_url` (user messages).")


@dataclass(frozen=True)
class CheckedChat:
    turns: list[ChatTurn]  # every image noted in its turn's text
    images: list[str]  # the question's images as data URLs, for the agent and a vision engine


async def check_chat(messages: list[ChatTurnIn], settings: Settings) -> CheckedChat:
    """The messages as plain turns and the question's images, every image checked (HTTPException saying what is wrong)."""
    turns: list[ChatTurn] = []
    images: list[str] = []
    for i, message in enumerate(messages):
        if isinstance(message.content, str):
            turns.append(ChatTurn(role=message.role, content=message.content))
            continue
        question = i == len(messages) - 1
        if question and (count := sum(isinstance(part, ImagePart) for part in message.content)) > MAX_IMAGES:
            raise HTTPException(422, f"the question carries {count} images; at most {MAX_IMAGES} may be attached to one question")
        pieces: list[str] = []
        for j, part in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            if isinstance(part, TextPart):
                pieces.append(part.text)
                continue
            if message.role != "user":
                raise HTTPException(422, f"{where}: only user messages may carry images")
            url = part.image_url.url
            if url.startswith("data:"):
                checked = check_data_url(url, where, settings)
            elif not question:
                pieces.append(await guard_https_url(url, where, settings))
                continue
            else:
                checked = await fetch_https_image(url, where, settings)
            pieces.append(checked.note)
            if question:
                images.append(checked.data_url)
        text = "\n".join(piece for piece in pieces if piece.strip())
        if not text:
            raise HTTPException(422, f"messages.{i}.content: no text and no image")
        turns.append(ChatTurn(role=message.role, content=text))
    return CheckedChat(turns=turns, images=images)
