"""Load files and bytes into ``SourceDocument``s: text, Markdown, HTML, PDF, JSON and JSON Lines.

Two entry points per input kind: ``load_path``/``load_bytes`` for exactly one document, and
``iter_documents``/``iter_documents_from_bytes`` for inputs that may hold many (record files;
``corpus.jsonl`` streams one record at a time). The bytes entry points take a media type or a
file name, so the HTTP API and URL ingestion reuse the same parsers as the CLI. Every failure
is a ``LoadError`` (a ``ValueError``) whose message says what was wrong and what is accepted.

    >>> doc = load_path(Path("notes.md"), tenant="acme", access=["team-a"])     # doctest: +SKIP
    >>> doc.title, doc.metadata["content_type"]                                  # doctest: +SKIP
    ('Release notes', 'text/markdown')
    >>> docs = iter_documents(Path("scifact/corpus.jsonl"), tenant="bench")      # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from indexing.loaders.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    LoadError,
    UnsupportedFormatError,
)
from indexing.loaders.formats import COMPRESSED_SUFFIX, FORMATS, Format, accepted, detect_format, split_media_type, suffix_of
from indexing.loaders.parsed import DocumentOrigin, ParsedText
from indexing.loaders.pdf import parse_pdf
from indexing.loaders.records import RecordFields, iter_records
from indexing.loaders.text import markdown_to_text
from indexing.types import SourceDocument

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Largest input read by default (decompressed); for JSON Lines files, the largest record."""

__all__ = [
    "DEFAULT_MAX_BYTES", "FORMATS", "CorruptDocumentError", "DocumentOrigin", "DocumentTooLargeError",
    "EmptyDocumentError", "Format", "LoadError", "ParsedText", "RecordFields", "UnsupportedFormatError",
    "accepted", "iter_documents", "iter_documents_from_bytes", "load_bytes", "load_path", "markdown_to_text",
]


def load_path(path: Path | str, *, tenant: str = "default", document_id: str | None = None, title: str | None = None,
              metadata: Mapping[str, Any] | None = None, access: Sequence[str] = (),
              fields: RecordFields = RecordFields(), max_bytes: int = DEFAULT_MAX_BYTES) -> SourceDocument:
    """Load one file as one document (a record file must hold exactly one record); the id
    defaults to the resolved path. Use ``iter_documents`` for files of many records."""
    return _exactly_one(iter_documents(path, tenant=tenant, document_id=document_id, title=title, metadata=metadata,
                                       access=access, fields=fields, max_bytes=max_bytes),
                        name=str(path), hint="iter_documents(path)")


def iter_documents(path: Path | str, *, tenant: str = "default", document_id: str | None = None,
                   title: str | None = None, metadata: Mapping[str, Any] | None = None, access: Sequence[str] = (),
                   fields: RecordFields = RecordFields(), max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[SourceDocument]:
    """Yield the documents of one file: one for a page-like file, one per record for JSON/JSONL
    (record ids as document ids, prefixed ``document_id#`` when one is given). ``.gz`` files
    are decompressed; JSON Lines stream, so ``max_bytes`` bounds each record rather than the file."""
    path = Path(path)
    resolved = path.resolve()
    name = str(path)
    compressed = suffix_of(name) == COMPRESSED_SUFFIX
    inner_name = name[: -len(COMPRESSED_SUFFIX)] if compressed else name
    fmt = detect_format(name=inner_name)  # by suffix only: a file's name is its declaration
    if not path.is_file():
        raise LoadError(f"cannot load {name!r}: no such file")
    origin = DocumentOrigin(tenant=tenant, document_id=document_id or (None if fmt.parse is None else str(resolved)),
                            source=str(resolved), name=inner_name, title=title,
                            metadata={"path": str(resolved), **(metadata or {})}, access=tuple(access))
    if fmt.parse is None and fmt.lines:
        opener = gzip.open if compressed else open
        with opener(path, "rb") as stream:
            try:
                yield from iter_records(stream, name=name, origin=origin, lines=True, fields=fields,
                                        max_record_bytes=max_bytes)
            except (OSError, EOFError, zlib.error) as exc:
                raise CorruptDocumentError(f"cannot load {name!r}: the gzip stream is broken ({exc})") from exc
        return
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentTooLargeError(f"cannot load {name!r}: it is {size} bytes, over the limit of {max_bytes}; "
                                    "split it or raise max_bytes")
    data = path.read_bytes()
    if compressed:
        data = _gunzip(data, name=name, max_bytes=max_bytes)
    yield from _parse(data, fmt, origin=origin, charset=None, fields=fields, max_bytes=max_bytes)


def load_bytes(data: bytes, *, media_type: str | None = None, filename: str | None = None, tenant: str = "default",
               document_id: str | None = None, source: str | None = None, title: str | None = None,
               metadata: Mapping[str, Any] | None = None, access: Sequence[str] = (),
               fields: RecordFields = RecordFields(), max_bytes: int = DEFAULT_MAX_BYTES) -> SourceDocument:
    """Load bytes received over the network as one document; the format comes from
    ``media_type`` (charset parameter honoured), else ``filename``'s suffix, else the first
    bytes. The id defaults to ``source``, then ``filename``, then a hash of the content."""
    return _exactly_one(iter_documents_from_bytes(data, media_type=media_type, filename=filename, tenant=tenant,
                                                  document_id=document_id, source=source, title=title,
                                                  metadata=metadata, access=access, fields=fields, max_bytes=max_bytes),
                        name=filename or source or "the document", hint="iter_documents_from_bytes(data)")


def iter_documents_from_bytes(data: bytes, *, media_type: str | None = None, filename: str | None = None,
                              tenant: str = "default", document_id: str | None = None, source: str | None = None,
                              title: str | None = None, metadata: Mapping[str, Any] | None = None,
                              access: Sequence[str] = (), fields: RecordFields = RecordFields(),
                              max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[SourceDocument]:
    """Like ``load_bytes`` but yields every record of a JSON/JSONL payload."""
    name = filename or source or ""
    if len(data) > max_bytes:
        raise DocumentTooLargeError(f"cannot load {name or 'the document'!r}: it is {len(data)} bytes, over the "
                                    f"limit of {max_bytes}; split it or raise the limit")
    media, charset = split_media_type(media_type)
    if media in ("application/gzip", "application/x-gzip") or suffix_of(name) == COMPRESSED_SUFFIX:
        data = _gunzip(data, name=name, max_bytes=max_bytes)
        name = name[: -len(COMPRESSED_SUFFIX)] if suffix_of(name) == COMPRESSED_SUFFIX else name
        media_type = None if media in ("application/gzip", "application/x-gzip") else media_type
    fmt = detect_format(media_type=media_type, name=name, head=data[:1024])
    default_id = source or filename or ("sha256:" + hashlib.sha256(data).hexdigest()[:32])
    origin = DocumentOrigin(tenant=tenant, document_id=document_id or (None if fmt.parse is None else default_id),
                            source=source, name=name or default_id, title=title, metadata=dict(metadata or {}),
                            access=tuple(access))
    yield from _parse(data, fmt, origin=origin, charset=charset, fields=fields, max_bytes=max_bytes)


def _parse(data: bytes, fmt: Format, *, origin: DocumentOrigin, charset: str | None,
           fields: RecordFields, max_bytes: int) -> Iterator[SourceDocument]:
    if fmt.parse is None:
        yield from iter_records(data, name=origin.name, origin=origin, lines=fmt.lines, fields=fields)
        return
    if fmt.parse is parse_pdf:  # the one format whose text can be far larger than its bytes: bound the extraction
        parsed = parse_pdf(data, name=origin.name, charset=charset, max_chars=max_bytes)
    else:
        parsed = fmt.parse(data, name=origin.name, charset=charset)
    if not parsed.text.strip():
        raise EmptyDocumentError(f"cannot load {origin.name or 'the document'!r}: it holds no text to index "
                                 f"(an empty {fmt.name} document)")
    yield origin.document(parsed)


def _gunzip(data: bytes, *, name: str, max_bytes: int) -> bytes:
    """Decompress with the output bounded, so a small gzip bomb cannot fill memory."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise CorruptDocumentError(f"cannot load {name or 'the document'!r}: the gzip data is broken ({exc})") from exc
    if len(out) > max_bytes:
        raise DocumentTooLargeError(f"cannot load {name or 'the document'!r}: it decompresses to over {max_bytes} "
                                    "bytes; split it or raise the limit")
    return out


def _exactly_one(documents: Iterator[SourceDocument], *, name: str, hint: str) -> SourceDocument:
    first = next(documents, None)
    if first is None:
        raise EmptyDocumentError(f"cannot load {name!r}: it holds no records")
    if next(documents, None) is not None:
        raise LoadError(f"cannot load {name!r} as one document: it holds several records; load it with {hint}")
    return first
