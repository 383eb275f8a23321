"""JSON and JSON Lines records, each record one document (BEIR ``corpus.jsonl`` loads as is).

Why this shape: corpora, exports and APIs ship documents as records (``{"_id", "title",
"text", "metadata"}`` in BEIR; ``id``/``content``/``body`` elsewhere), so the keys are
configurable with defaults that cover the common layouts (``RecordFields``). JSON Lines are
read one line at a time, so a corpus of any size streams with one record in memory. The
tenant always comes from the caller; a record's own access list is used only when the caller
names its key (``RecordFields(access="acl")``), because a file must not widen its own access.

    >>> [d.id for d in iter_records(b'{"_id": "4983", "title": "T", "text": "..."}', name="corpus.jsonl",
    ...                             origin=DocumentOrigin(tenant="acme"), lines=True)]
    ['4983']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from indexing.loaders.errors import CorruptDocumentError, DocumentTooLargeError
from indexing.loaders.parsed import DocumentOrigin, ParsedText
from indexing.types import SourceDocument

_CONTAINER_KEYS = ("documents", "records", "data", "items", "corpus")


class ByteStream(Protocol):
    """What the records are read from besides bytes: an open binary file, a ``GzipFile`` among them
    (which ``typing.BinaryIO`` does not cover)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class RecordFields:
    """Which keys of a record hold its id, title, text and access list; the first key present wins.

    Keys not used for those become metadata (a ``metadata`` object is merged in), so nothing
    a record carries is lost.
    """

    id: tuple[str, ...] = ("id", "_id", "doc_id", "docid", "uuid")
    title: tuple[str, ...] = ("title", "name", "headline")
    text: tuple[str, ...] = ("text", "content", "body", "contents", "abstract", "page_content")
    access: str | None = None

    def describe(self) -> str:
        return f"text keys {list(self.text)}, id keys {list(self.id)}, title keys {list(self.title)}"


def iter_records(data: bytes | ByteStream, *, name: str, origin: DocumentOrigin, lines: bool,
                 fields: RecordFields = RecordFields(), max_record_bytes: int | None = None) -> Iterator[SourceDocument]:
    """Yield one document per record: ``lines=True`` reads JSON Lines (from bytes or a binary
    file, one line at a time); ``lines=False`` reads one JSON value (an array of records, an
    object holding one under ``documents``/``records``/``data``/``items``, or one record)."""
    if lines:
        stream = _lines(data, name=name, max_record_bytes=max_record_bytes)
        for number, line in stream:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise CorruptDocumentError(f"cannot load {name!r}: line {number} is not valid JSON ({exc}); "
                                           "JSON Lines need one complete JSON object per line") from exc
            yield _document(record, f"line {number}", number, name=name, origin=origin, fields=fields,
                            content_type="application/x-ndjson")
        return
    raw = data if isinstance(data, bytes) else data.read()
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise CorruptDocumentError(f"cannot load {name!r}: it is not valid JSON ({exc})") from exc
    for number, record in enumerate(_records_in(value, name=name, fields=fields), 1):
        yield _document(record, f"record {number}", number, name=name, origin=origin, fields=fields,
                        content_type="application/json")


def _records_in(value: Any, *, name: str, fields: RecordFields) -> Iterable[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if any(key in value for key in fields.text):
            return [value]
        for key in _CONTAINER_KEYS:
            if isinstance(value.get(key), list):
                return value[key]
    raise CorruptDocumentError(f"cannot load {name!r}: expected a JSON array of records, an object with a "
                               f"{'/'.join(_CONTAINER_KEYS)} array, or one record with a text key "
                               f"({fields.describe()})")


def _lines(data: bytes | ByteStream, *, name: str, max_record_bytes: int | None) -> Iterator[tuple[int, bytes]]:
    if isinstance(data, bytes):
        for number, line in enumerate(data.splitlines(), 1):
            yield number, line
        return
    limit = -1 if max_record_bytes is None else max_record_bytes + 1
    number = 0
    while True:
        line = data.readline(limit)
        if not line:
            return
        number += 1
        if max_record_bytes is not None and len(line) > max_record_bytes and not line.endswith(b"\n"):
            raise DocumentTooLargeError(f"cannot load {name!r}: line {number} is over the limit of "
                                        f"{max_record_bytes} bytes per record; split the record or raise the limit")
        yield number, line


def _document(record: Any, where: str, number: int, *, name: str, origin: DocumentOrigin,
              fields: RecordFields, content_type: str) -> SourceDocument:
    if not isinstance(record, dict):
        raise CorruptDocumentError(f"cannot load {name!r}: {where} is a JSON {type(record).__name__}, "
                                   "not an object; each record must be a JSON object")
    text_key = _first_key(record, fields.text)
    if text_key is None:
        raise CorruptDocumentError(f"cannot load {name!r}: {where} has none of the text keys {list(fields.text)} "
                                   f"(its keys: {sorted(record)[:20]}); name the text key with RecordFields(text=...)")
    id_key, title_key = _first_key(record, fields.id), _first_key(record, fields.title)
    used = {k for k in (text_key, id_key, title_key, fields.access) if k}
    metadata: dict[str, Any] = dict(record["metadata"]) if isinstance(record.get("metadata"), dict) else {}
    metadata.update({k: v for k, v in record.items() if k not in used and k != "metadata"})
    metadata["record"] = number
    record_id = str(record[id_key]) if id_key is not None and record[id_key] not in (None, "") else None
    base = origin.document_id or origin.source or name
    if record_id is None:
        document_id = f"{base}#{number}"
    else:
        document_id = f"{origin.document_id}#{record_id}" if origin.document_id else record_id
    access = None
    if fields.access and fields.access in record:
        value = record[fields.access]
        access = [str(p) for p in value] if isinstance(value, list) else [str(value)]
    parsed = ParsedText(text=_as_text(record[text_key]), content_type=content_type,
                        title=_as_text(record[title_key]) if title_key else None, metadata=metadata)
    document = origin.document(parsed, document_id=document_id, access=access)
    if title_key is None and origin.title is None:
        document.title = ""  # a record without a title has none; the file name would mislead
    return document


def _first_key(record: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in record), None)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n\n".join(_as_text(v) for v in value if v is not None)
    return value.strip() if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
