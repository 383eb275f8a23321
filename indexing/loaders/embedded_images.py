"""The images a PDF or an HTML page carries inside it, as far as the loader exposes them.

- PDF: the image XObjects of each page (`page.images` in pypdf). An image's declared width x height
  is checked against the pixel limit before pypdf decodes its stream (a few bytes of Flate data can
  declare a gigapixel), and images inside form XObjects are not read.
- HTML: `<img>` elements whose `src` is a `data:` URL, with their `alt` text as caption. Remote
  `src` URLs are not fetched (no request leaves the ingest worker for a page's images).

A bad image here never stops the others or the text of its document: extraction returns what it
could read and, separately, what it refused and why (`EmbeddedImageFailure`), which the caller
records. Decoding and the byte/pixel limits proper are the image pipeline's (indexing/images/).

    found, refused = embedded_images(data, fmt="pdf", name="report.pdf", limit=50, max_pixels=40_000_000)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from indexing.loaders.html import decode_html
from indexing.loaders.pdf import open_pdf


@dataclass(frozen=True)
class EmbeddedImage:
    """One image found in a document: its bytes, where it was (`name`, for messages) and its caption."""

    data: bytes
    name: str
    caption: str = ""


@dataclass(frozen=True)
class EmbeddedImageFailure:
    name: str
    reason: str


Found = EmbeddedImage | EmbeddedImageFailure


def embedded_images(data: bytes, *, fmt: str, name: str, limit: int, max_pixels: int,
                    charset: str | None = None) -> tuple[list[EmbeddedImage], list[EmbeddedImageFailure]]:
    """At most `limit` images of a `pdf` or `html` document (none for other formats); the rest are refused."""
    walk = _pdf_images(data, name=name, max_pixels=max_pixels) if fmt == "pdf" else \
        _html_images(data, charset=charset) if fmt == "html" else iter(())
    found: list[EmbeddedImage] = []
    refused: list[EmbeddedImageFailure] = []
    for item in walk:
        if isinstance(item, EmbeddedImageFailure):
            refused.append(item)
        elif len(found) >= limit:
            refused.append(EmbeddedImageFailure(item.name, f"over the limit of {limit} images per document (RAGLOOP_IMAGES_MAX_EMBEDDED)"))
        else:
            found.append(item)
    return found, refused


def _pdf_images(data: bytes, *, name: str, max_pixels: int) -> Iterator[Found]:
    reader = open_pdf(data, name=name)  # the text loader has opened it already: a broken file never gets here
    for number, page in enumerate(reader.pages, start=1):
        try:
            keys = list(page.images.keys())
            resources: Any = page.get("/Resources")
            xobjects: Any = resources.get_object().get("/XObject") if resources is not None else None
            xobjects = xobjects.get_object() if xobjects is not None else {}
        except Exception as error:  # noqa: BLE001 — a broken page's resources lose its images, not the document
            yield EmbeddedImageFailure(f"page {number}", f"its images cannot be listed ({type(error).__name__}: {error})")
            continue
        for key in keys:
            label = f"page {number} image {key if isinstance(key, str) else '/'.join(key)}".replace("//", "/")
            if not isinstance(key, str) or key not in xobjects:
                yield EmbeddedImageFailure(label, "inside a form XObject: not read")
                continue
            declared = xobjects[key].get_object()
            width, height = int(declared.get("/Width", 0)), int(declared.get("/Height", 0))
            if width * height > max_pixels:
                yield EmbeddedImageFailure(label, f"declares {width}x{height} = {width * height} pixels; the limit is {max_pixels} "
                                                  "(RAGLOOP_IMAGES_MAX_PIXELS)")
                continue
            try:
                yield EmbeddedImage(page.images[key].data, label)
            except Exception as error:  # noqa: BLE001 — pypdf raises plain errors on broken image streams
                yield EmbeddedImageFailure(label, f"cannot be decoded ({type(error).__name__}: {error})")


def _html_images(data: bytes, *, charset: str | None) -> Iterator[Found]:
    from selectolax.lexbor import LexborHTMLParser

    for number, img in enumerate(LexborHTMLParser(decode_html(data, charset=charset)).css("img"), start=1):
        src = (img.attributes.get("src") or "").strip()
        label = f"<img> {number}"
        if not src.lower().startswith("data:"):
            continue  # a remote image is not fetched
        header, comma, payload = src.partition(",")
        if not comma or ";base64" not in header.lower():
            yield EmbeddedImageFailure(label, "a data: URL that is not base64")
            continue
        try:
            image = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            yield EmbeddedImageFailure(label, f"its data: URL is not valid base64 ({error})")
            continue
        yield EmbeddedImage(image, label, (img.attributes.get("alt") or "").strip())
