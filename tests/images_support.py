"""Real image files for the image tests, made with Pillow (every format the ingest accepts)."""

from __future__ import annotations

import io

from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30),
                *, exif_orientation: int | None = None) -> bytes:
    """An image of one colour with a white square in its top-left corner (so orientation shows)."""
    image = Image.new("RGB", size, color)
    image.paste((255, 255, 255), (0, 0, size[0] // 4, size[1] // 4))
    out = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(out, format=fmt, exif=exif.tobytes())
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def bomb_png(width: int = 9000, height: int = 9000) -> bytes:
    """A tiny PNG file that declares width*height pixels: a decompression bomb for small limits."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG", optimize=True)
    return out.getvalue()
