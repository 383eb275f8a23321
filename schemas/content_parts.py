"""OpenAI-style content parts of a chat message: `text` and `image_url`.

One definition for both directions: the gateway reads them from clients (`/v1/chat`,
`/v1/chat/completions`), and the OpenAI-compatible engine writes them to a vision model's server.

    >>> ImagePart(type="image_url", image_url=ImageUrl(url="data:image/png;base64,iVBOR…")).model_dump(exclude_none=True)
    {'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,iVBOR…'}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ContentPart(BaseModel):
    """A part of a message's content; unknown keys are refused so a client's typo is a 422, not ignored."""

    model_config = ConfigDict(extra="forbid")


class TextPart(ContentPart):
    type: Literal["text"]
    text: str


class ImageUrl(ContentPart):
    url: str = Field(min_length=1, description="`data:image/png;base64,…` or an `https://` URL.")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(ContentPart):
    type: Literal["image_url"]
    image_url: ImageUrl
