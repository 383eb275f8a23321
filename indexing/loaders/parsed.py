"""What a format parser returns, and where a document came from: the two halves of a ``SourceDocument``.

Parsers only turn bytes into text (``ParsedText``); who owns the document, its id, source and
access list come from the caller (``DocumentOrigin``), never from the file, so a document can
not move itself into another tenant or widen its own access list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from indexing.types import SourceDocument


@dataclass(frozen=True)
class ParsedText:
    """Plain text of one document as a parser produced it, with what the format told about it."""

    text: str
    content_type: str
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentOrigin:
    """The caller's facts about a document: copied onto every ``SourceDocument`` a loader yields.

    ``name`` (a file name or URL) appears in error messages and gives the fallback title;
    ``title``, when set, overrides the title found in the document.
    """

    tenant: str = "default"
    document_id: str | None = None
    source: str | None = None
    name: str = ""
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    access: Sequence[str] = ()

    def document(self, parsed: ParsedText, *, document_id: str | None = None,
                 access: Sequence[str] | None = None) -> SourceDocument:
        doc_id = document_id or self.document_id or self.source or self.name
        if not doc_id:
            raise ValueError("a document needs an id: pass document_id (or a source/name to derive it from)")
        return SourceDocument(
            id=doc_id,
            tenant=self.tenant,
            title=self.title or parsed.title or title_from_name(self.name),
            text=parsed.text,
            source=self.source,
            metadata={"content_type": parsed.content_type, **parsed.metadata, **self.metadata},
            access=list(self.access if access is None else access),
        )


def title_from_name(name: str) -> str:
    """``reports/q3_sales-summary.pdf`` -> ``q3 sales summary``: a readable fallback title."""
    stem = PurePosixPath(name.replace("\\", "/").rstrip("/")).name.split("?")[0]
    for suffix in (".gz",):
        stem = stem.removesuffix(suffix)
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return stem.replace("_", " ").replace("-", " ").strip()
