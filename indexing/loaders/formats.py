"""Which loader reads which input: the format table, and how a format is recognised.

A file is recognised by its name (``.pdf``), bytes from the network by their media type
(``application/pdf``) — both are in one table so the accepted list in error messages is
always the real one. When neither is conclusive (``application/octet-stream``, no suffix) the
first bytes decide for the formats that announce themselves (PDF, HTML).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from indexing.loaders.errors import UnsupportedFormatError
from indexing.loaders.html import parse_html
from indexing.loaders.parsed import ParsedText
from indexing.loaders.pdf import parse_pdf
from indexing.loaders.text import parse_markdown, parse_text

Parser = Callable[..., ParsedText]


@dataclass(frozen=True)
class Format:
    """One input format: how it is named, and either a parser (one document) or record reading."""

    name: str
    suffixes: tuple[str, ...]
    media_types: tuple[str, ...]
    parse: Parser | None = None  # None: a record format, read by ``indexing.loaders.records``
    lines: bool = False  # record format: JSON Lines rather than one JSON value


FORMATS: tuple[Format, ...] = (
    Format("text", (".txt", ".text"), ("text/plain",), parse_text),
    Format("markdown", (".md", ".markdown"), ("text/markdown", "text/x-markdown"), parse_markdown),
    Format("html", (".html", ".htm", ".xhtml"), ("text/html", "application/xhtml+xml"), parse_html),
    Format("pdf", (".pdf",), ("application/pdf", "application/x-pdf"), parse_pdf),
    Format("json", (".json",), ("application/json", "text/json")),
    Format("jsonl", (".jsonl", ".ndjson"),
           ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
            "application/jsonlines", "application/json-lines"), lines=True),
)
_BY_SUFFIX = {suffix: f for f in FORMATS for suffix in f.suffixes}
_BY_MEDIA_TYPE = {media: f for f in FORMATS for media in f.media_types}
_GENERIC_MEDIA_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/unknown", ""})
COMPRESSED_SUFFIX = ".gz"


def accepted() -> str:
    """The accepted suffixes and media types, for error messages."""
    suffixes = ", ".join(sorted(_BY_SUFFIX)) + f" (each also as {COMPRESSED_SUFFIX})"
    return f"accepted suffixes: {suffixes}; accepted media types: {', '.join(sorted(_BY_MEDIA_TYPE))}"


def split_media_type(media_type: str | None) -> tuple[str, str | None]:
    """``'text/html; charset=ISO-8859-1'`` -> ``('text/html', 'ISO-8859-1')``."""
    if not media_type:
        return "", None
    main, *params = media_type.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"\'')
    return main.strip().lower(), charset


def suffix_of(name: str) -> str:
    """The last suffix of a file name or URL path, lower case ('' if none)."""
    last = name.replace("\\", "/").split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return "." + last.rsplit(".", 1)[1].lower() if "." in last else ""


def detect_format(*, media_type: str | None = None, name: str = "", head: bytes = b"") -> Format:
    """The format of an input: a specific media type wins, then the name's suffix, then
    ``text/plain``, then the first bytes; otherwise ``UnsupportedFormatError``."""
    media, _ = split_media_type(media_type)
    by_media = _BY_MEDIA_TYPE.get(media)
    if by_media is not None and by_media.name != "text":
        return by_media
    by_suffix = _BY_SUFFIX.get(suffix_of(name))
    if by_suffix is not None:
        return by_suffix
    if by_media is not None:
        return by_media
    if media in _GENERIC_MEDIA_TYPES:
        sniffed = _sniff(head)
        if sniffed is not None:
            return sniffed
    what = f"media type {media!r}" if media else f"files ending in {suffix_of(name) or '(no suffix)'!r}"
    raise UnsupportedFormatError(f"cannot load {name or 'the document'!r}: {what} are not supported; {accepted()}")


def _sniff(head: bytes) -> Format | None:
    start = head.lstrip()[:512].lower()
    if start.startswith(b"%pdf-"):
        return _BY_SUFFIX[".pdf"]
    if start.startswith((b"<!doctype html", b"<html")) or b"<html" in start:
        return _BY_SUFFIX[".html"]
    return None
