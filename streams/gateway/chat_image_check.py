"""One image of a chat message, checked at the door: a `data:` URL decoded, an `https:` URL fetched, both
within RAGLOOP_GATEWAY_MAX_IMAGE_BYTES and _PIXELS and decodable by Pillow, and handed on as a data URL.

An `https:` image is fetched by URL ingestion's own fetcher (`indexing.url_fetch.fetch_url`): the SSRF
guard on every hop, the connection pinned to the checked addresses, the byte limit counted while
streaming, the whole-fetch time limit (RAGLOOP_FETCH_TIMEOUT_S), its thread pool. So the agent and a vision engine only
ever see bytes the gateway has checked, never a URL they would have to fetch themselves. Every refusal
is an HTTPException (413 for size, 422 otherwise) naming the part and what to fix.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException

from indexing.url_fetch import FetchError, FetchTooLargeError, fetch_url, trusted_context
from indexing.url_guard import resolve_allowed
from schemas.settings import Settings
from streams.executors import FETCH, run_in

_DATA_URL = re.compile(r"^data:(?P<type>image/[A-Za-z0-9.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_ACCEPT_IMAGES = "image/png,image/jpeg,image/webp,image/gif;q=0.9,image/*;q=0.5"
_ANY_BYTES = ("application/octet-stream", "binary/octet-stream")  # what a bucket serves for a file it has no type for


@dataclass(frozen=True)
class CheckedImage:
    data_url: str  # `data:image/<format>;base64,…`: how the image travels on the event
    note: str  # what the turn's text says in its place


def check_data_url(url: str, where: str, settings: Settings) -> CheckedImage:
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
    kind, width, height = _decodable(data, where, settings)
    return CheckedImage(data_url=url, note=f"[image attached: {kind} {width}x{height}]")


async def fetch_https_image(url: str, where: str, settings: Settings) -> CheckedImage:
    """Fetch `url` (an https image) as URL ingestion fetches a document, and check it like a data URL."""
    _require_https(url, where)
    limit = settings.gateway.max_image_bytes
    try:
        # On the fetch pool, as URL ingestion: slow image servers must not take the default pool's threads from the API.
        fetched = await run_in(FETCH, settings.ingest.fetch_threads, fetch_url, url, max_bytes=limit,
                               timeout_s=settings.ingest.fetch_timeout_s, allow_private=settings.ingest.fetch_allow_private,
                               accept=_ACCEPT_IMAGES, verify=trusted_context(settings.ingest.fetch_ca_file))
    except FetchTooLargeError as error:
        raise HTTPException(413, f"{where}: {error} (RAGLOOP_GATEWAY_MAX_IMAGE_BYTES); send a smaller image") from None
    except FetchError as error:
        raise HTTPException(422, f"{where}: {error}") from None
    media_type = (fetched.content_type or "").split(";", 1)[0].strip().lower()
    if media_type and not media_type.startswith("image/") and media_type not in _ANY_BYTES:
        raise HTTPException(422, f"{where}: {url!r} answered {media_type}, not an image; link the image file itself")
    kind, width, height = _decodable(fetched.content, where, settings)
    data_url = f"data:image/{kind.lower()};base64,{base64.b64encode(fetched.content).decode('ascii')}"
    return CheckedImage(data_url=data_url, note=f"[image attached: {kind} {width}x{height} from {url}]")


async def guard_https_url(url: str, where: str, settings: Settings) -> str:
    """An earlier turn's image: only the SSRF guard (it is not searched by, so not fetched); its note."""
    hostname, port = _require_https(url, where)
    try:
        await asyncio.to_thread(resolve_allowed, hostname, port, allow_private=settings.ingest.fetch_allow_private)
    except (FetchError, ValueError) as error:
        raise HTTPException(422, f"{where}: {error}") from None
    return f"[image attached: {url}]"


def _require_https(url: str, where: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        port = 0
    if parts.scheme != "https" or not parts.hostname or not port:
        raise HTTPException(422, f"{where}: an image URL must be `https://…` or a `data:image/…;base64,` URL")
    return parts.hostname, port


def _decodable(data: bytes, where: str, settings: Settings) -> tuple[str, int, int]:
    """(format, width, height) of an image Pillow can decode within the pixel limit; 422 otherwise."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > settings.gateway.max_image_pixels:
                raise HTTPException(422, f"{where}: the image is {width}x{height} pixels; the limit is "
                                         f"{settings.gateway.max_image_pixels} pixels (RAGLOOP_GATEWAY_MAX_IMAGE_PIXELS)")
            image.verify()
            kind = image.format or "PNG"
    except HTTPException:
        raise
    except Exception:  # noqa: BLE001 — Pillow raises many types for a corrupt or truncated file
        raise HTTPException(422, f"{where}: the image cannot be decoded (corrupt, truncated or not an image)") from None
    return kind, width, height
