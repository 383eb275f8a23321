"""PDF to plain text with pypdf, one page at a time.

Why this shape: pypdf is pure Python (no native build, nothing to exploit in C) and extracts
the text layer page by page, so a caller that only needs pages (``iter_pdf_pages``) never
holds more than one page's text; ``parse_pdf`` joins them with blank lines and records where
each page starts (``metadata["page_starts"]``, character offsets) so a chunk can be traced
back to its page. Any failure inside the parser on untrusted bytes is a corrupt document,
never a crash of the caller. Scanned PDFs without a text layer are refused with a reason
rather than indexed empty.

Bounded: a small PDF can hold a huge page tree or compress megabytes of text into each page, so
extraction stops with a ``DocumentTooLargeError`` past ``MAX_PAGES`` pages or past ``max_chars``
characters of text (the loader passes its byte limit, RAGLOOP_FETCH_MAX_BYTES in the workers:
a PDF yields no more text than a plain-text document of that size may hold).

    >>> parse_pdf(Path("report.pdf").read_bytes(), name="report.pdf").metadata["pages"]   # doctest: +SKIP
    12
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PyPdfError

from indexing.loaders.errors import CorruptDocumentError, DocumentTooLargeError, EmptyDocumentError, LoadError
from indexing.loaders.parsed import ParsedText
from indexing.loaders.text import normalise_text

MAX_PAGES = 5000
"""Most pages read from one PDF (indexing/loaders/pdf.py); split longer documents."""
DEFAULT_MAX_CHARS = 64 * 1024 * 1024


def parse_pdf(data: bytes, *, name: str = "", charset: str | None = None, max_chars: int = DEFAULT_MAX_CHARS,
              max_pages: int = MAX_PAGES) -> ParsedText:
    """The text layer of every page, pages separated by blank lines; the title is the PDF's own, if any."""
    reader = open_pdf(data, name=name)
    label = name or "the PDF"
    if len(reader.pages) > max_pages:
        raise DocumentTooLargeError(f"cannot load {label!r}: it has {len(reader.pages)} pages, over the limit of {max_pages} "
                                    "(MAX_PAGES in indexing/loaders/pdf.py); split it")
    parts: list[str] = []
    page_starts: list[int] = []
    offset = 0
    for text in iter_pdf_pages(reader, name=name):
        if offset + len(text) > max_chars:
            raise DocumentTooLargeError(f"cannot load {label!r}: its text is over the limit of {max_chars} characters "
                                        f"(reached on page {len(page_starts) + 1}; the byte limit, RAGLOOP_FETCH_MAX_BYTES "
                                        "in the workers); split it or raise that setting")
        if text and parts:
            offset += 2  # the blank line between pages
        page_starts.append(offset)
        if text:
            parts.append(text)
            offset += len(text)
    if not parts:
        raise EmptyDocumentError(f"cannot load {name or 'the PDF'!r}: its {len(page_starts)} page(s) have no text "
                                 "layer (a scan?); run OCR on it first or send the text")
    return ParsedText(text="\n\n".join(parts), content_type="application/pdf", title=_title(reader),
                      metadata={"pages": len(page_starts), "page_starts": page_starts, "headings": []})


def open_pdf(data: bytes, *, name: str = "") -> PdfReader:
    """A reader over the bytes; unreadable or password-protected files are a ``LoadError``."""
    label = name or "the PDF"
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise CorruptDocumentError(f"cannot load {label!r}: it is not a PDF (no '%PDF-' header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileNotDecryptedError("a password is needed")
        len(reader.pages)  # parses the page tree now, so a broken one fails here, not half-way
        return reader
    except (FileNotDecryptedError, PyPdfError) as exc:
        if isinstance(exc, FileNotDecryptedError) or "decrypt" in str(exc).lower():
            raise LoadError(f"cannot load {label!r}: it is encrypted ({exc}); send a copy without a password") from exc
        raise CorruptDocumentError(f"cannot load {label!r}: it is not a readable PDF ({exc})") from exc
    except Exception as exc:  # pypdf raises plain errors on some garbage; all mean "unreadable"
        raise CorruptDocumentError(f"cannot load {label!r}: it is not a readable PDF "
                                   f"({type(exc).__name__}: {exc})") from exc


def iter_pdf_pages(source: PdfReader | bytes, *, name: str = "") -> Iterator[str]:
    """Yield each page's text (normalised; ``""`` for a page without text), in page order."""
    reader = source if isinstance(source, PdfReader) else open_pdf(source, name=name)
    for number in range(len(reader.pages)):
        try:
            text = reader.pages[number].extract_text() or ""
        except Exception as exc:
            raise CorruptDocumentError(f"cannot load {name or 'the PDF'!r}: page {number + 1} is unreadable "
                                       f"({type(exc).__name__}: {exc})") from exc
        yield normalise_text(text)


def _title(reader: PdfReader) -> str | None:
    try:
        info: Any = reader.metadata
        title = (info.title if info is not None else None) or ""
    except Exception:  # noqa: BLE001 — broken metadata is no reason to lose the text
        return None
    return str(title).strip() or None
