"""Decoding uploaded images: the accepted formats, EXIF orientation, and every refusal with the right status."""

from __future__ import annotations

import pytest

from indexing.images.decode import decode_image, http_status
from indexing.loaders.errors import CorruptDocumentError, DocumentTooLargeError, UnsupportedFormatError
from tests.images_support import bomb_png, image_bytes

LIMITS = {"max_bytes": 5 * 1024 * 1024, "max_pixels": 4_000_000}


@pytest.mark.parametrize(("fmt", "media_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_each_accepted_format_decodes_to_rgb(fmt: str, media_type: str) -> None:
    decoded = decode_image(image_bytes(fmt), **LIMITS)
    assert (decoded.format, decoded.media_type, decoded.image.mode, decoded.image.size) == (fmt, media_type, "RGB", (64, 48))


def test_exif_orientation_is_applied() -> None:
    # orientation 6: the camera was turned; the upright picture is 48 wide and 64 high
    assert decode_image(image_bytes("JPEG", exif_orientation=6), **LIMITS).image.size == (48, 64)


def test_over_the_byte_limit_is_413() -> None:
    with pytest.raises(DocumentTooLargeError, match="RAGLOOP_IMAGES_MAX_BYTES") as error:
        decode_image(image_bytes("PNG"), max_bytes=10, max_pixels=LIMITS["max_pixels"])
    assert http_status(error.value) == 413


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = bomb_png()
    assert len(bomb) < 100_000  # tiny file, 81 million pixels declared
    with pytest.raises(DocumentTooLargeError, match="RAGLOOP_IMAGES_MAX_PIXELS") as error:
        decode_image(bomb, **LIMITS)
    assert http_status(error.value) == 413


def test_truncated_image_is_corrupt_422() -> None:
    with pytest.raises(CorruptDocumentError, match="corrupt or truncated") as error:
        decode_image(image_bytes("JPEG", size=(256, 256))[:400], **LIMITS)
    assert http_status(error.value) == 422


@pytest.mark.parametrize("data", [image_bytes("GIF"), b"not an image at all"], ids=["gif", "garbage"])
def test_unsupported_or_garbage_bytes_are_422(data: bytes) -> None:
    with pytest.raises(UnsupportedFormatError, match="JPEG, PNG or WebP") as error:
        decode_image(data, **LIMITS)
    assert http_status(error.value) == 422
