"""Decoding an uploaded image safely: format allow-list, byte and pixel limits checked before the
pixels are decoded (a decompression bomb declares a huge size in a tiny file), EXIF orientation
applied so a phone photo is embedded and shown upright.

Every refusal is a `LoadError` subclass with a message that says what to fix; `status` maps it
to the HTTP answer (413 for limits, 422 for broken or unsupported input).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from indexing.loaders.errors import CorruptDocumentError, DocumentTooLargeError, UnsupportedFormatError

# Pillow format name -> (media type, file suffix). Only these are decoded.
IMAGE_FORMATS: dict[str, tuple[str, str]] = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/webp")


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image, the format it came in and its original bytes."""

    image: Image.Image
    format: str
    data: bytes

    @property
    def media_type(self) -> str:
        return IMAGE_FORMATS[self.format][0]

    @property
    def suffix(self) -> str:
        return IMAGE_FORMATS[self.format][1]


def is_image(*, name: str = "", media_type: str | None = None) -> bool:
    """Whether an input names itself as an image by media type or file suffix."""
    media = (media_type or "").split(";", 1)[0].strip().lower()
    return media.startswith("image/") or name.lower().rsplit("?", 1)[0].endswith(IMAGE_SUFFIXES)


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "the image") -> DecodedImage:
    """The decoded image; raises `DocumentTooLargeError` (limits) or `CorruptDocumentError` /
    `UnsupportedFormatError` (bytes that are not a whole JPEG, PNG or WebP)."""
    if len(data) > max_bytes:
        raise DocumentTooLargeError(f"{name} is {len(data)} bytes; the limit is {max_bytes} (RAGLOOP_IMAGES_MAX_BYTES)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
            width, height = opened.size
            if width * height > max_pixels:
                raise DocumentTooLargeError(f"{name} declares {width}x{height} = {width * height} pixels; the limit is "
                                            f"{max_pixels} (RAGLOOP_IMAGES_MAX_PIXELS)")
            fmt = str(opened.format)
            opened.load()
            upright = ImageOps.exif_transpose(opened).convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DocumentTooLargeError(f"{name} is a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedFormatError(f"{name} is not a JPEG, PNG or WebP image (the accepted image formats)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, DocumentTooLargeError):
            raise
        raise CorruptDocumentError(f"{name} is corrupt or truncated: {exc}") from exc
    return DecodedImage(image=upright, format=fmt, data=data)


def http_status(error: Exception) -> int:
    """413 for an image over a limit, 422 for any other refusal."""
    return 413 if isinstance(error, DocumentTooLargeError) else 422
