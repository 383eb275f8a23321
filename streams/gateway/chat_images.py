"""Images in chat messages: OpenAI-style content parts on `/v1/chat` and `/v1/chat/completions`, checked at the door.

A message's `content` may be a string or a list of parts, `{"type": "text", "text": …}` and
`{"type": "image_url", "image_url": {"url": …}}`. An image is a `data:image/…;base64,` URL (decoded,
at most RAGLOOP_GATEWAY_MAX_IMAGE_BYTES, decodable by Pillow within RAGLOOP_GATEWAY_MAX_IMAGE_PIXELS)
or an `https://` URL behind the same SSRF guard as URL ingestion; anything else is a 422 (413 for
size) that says what is accepted. Checked images are noted in the turn's text for the model:
passing them on to vision engines and to image search is not wired yet (see the issue).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
from typing import Literal
from urllib.parse import urlsplit

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from indexing.loaders import LoadError
from indexing.url_guard import resolve_allowed
from schemas.events import ChatTurn, NonEmpty
from schemas.settings import Settings

_DATA_URL = re.compile(r"^data:(?P<type>image/[A-Za-z0-9.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, description="`data:image/png;base64,…` or an `https://` URL.")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image_url"]
    image_url: ImageUrl


class ChatTurnIn(BaseModel):
    """A chat message as OpenAI clients send it: text, or a list of text and image parts."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: NonEmpty | list[TextPart | ImagePart] = Field(description="Text, or parts: `text` and `image_url` (user messages).")


def _check_data_url(url: str, where: str, settings: Settings) -> str:
    match = _DATA_URL.match(url)
    if match is None:
        raise HTTPException(422, f"{where}: a data URL must be `data:image/<format>;base64,<bytes>`")
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(422, f"{where}: the image is not valid base64") from None
    limit = settings.gateway.max_image_bytes
    if len(data) > limit:
        raise HTTPException(413, f"{where}: the image is {len(data)} bytes; the limit is {limit} (RAGLOOP_GATEWAY_MAX_IMAGE_BYTES)")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > settings.gateway.max_image_pixels:
                raise HTTPException(422, f"{where}: the image is {width}x{height} pixels; the limit is "
                                         f"{settings.gateway.max_image_pixels} pixels (RAGLOOP_GATEWAY_MAX_IMAGE_PIXELS)")
            image.verify()
            kind = image.format or match["type"]
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 — Pillow raises many types for a corrupt or truncated file
        raise HTTPException(422, f"{where}: the image cannot be decoded (corrupt, truncated or not an image)") from None
    return f"[image attached: {kind} {width}x{height}]"


async def _check_https_url(url: str, where: str, settings: Settings) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise HTTPException(422, f"{where}: an image URL must be `https://…` or a `data:image/…;base64,` URL")
    try:
        await asyncio.to_thread(resolve_allowed, parts.hostname, parts.port or 443, allow_private=settings.ingest.fetch_allow_private)
    except (LoadError, ValueError) as error:
        raise HTTPException(422, f"{where}: {error}") from None
    return f"[image attached: {url}]"


async def flatten_turns(messages: list[ChatTurnIn], settings: Settings) -> list[ChatTurn]:
    """The messages as plain turns, every image checked (HTTPException saying what is wrong) and noted in its turn's text."""
    turns: list[ChatTurn] = []
    for i, message in enumerate(messages):
        if isinstance(message.content, str):
            turns.append(ChatTurn(role=message.role, content=message.content))
            continue
        pieces: list[str] = []
        for j, part in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            if isinstance(part, TextPart):
                pieces.append(part.text)
            elif message.role != "user":
                raise HTTPException(422, f"{where}: only user messages may carry images")
            elif part.image_url.url.startswith("data:"):
                pieces.append(_check_data_url(part.image_url.url, where, settings))
            else:
                pieces.append(await _check_https_url(part.image_url.url, where, settings))
        text = "\n".join(piece for piece in pieces if piece.strip())
        if not text:
            raise HTTPException(422, f"messages.{i}.content: no text and no image")
        turns.append(ChatTurn(role=message.role, content=text))
    return turns


def attached_images(messages: list[ChatTurnIn]) -> list[str]:
    """The `data:` images of the question (the last message), for the agent to search by. Call after
    `flatten_turns` has checked them; `https:` images are noted in the text only (the agent does not fetch)."""
    content = messages[-1].content if messages else ""
    if isinstance(content, str):
        return []
    return [part.image_url.url for part in content if isinstance(part, ImagePart) and part.image_url.url.startswith("data:")]
