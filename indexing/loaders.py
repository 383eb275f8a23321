"""Load files into ``SourceDocument``s: plain text and Markdown (rendered to plain text).

Markdown is rendered rather than indexed raw so that markup (``**``, link targets, table
pipes) never pollutes BM25 terms or embeddings, while headings survive as their own lines
(and are listed in ``metadata["headings"]``) so the chunker can follow the document's
structure.

    >>> doc = load_path(Path("notes.md"), tenant="acme")      # doctest: +SKIP
    >>> doc.title, doc.metadata["content_type"]                # doctest: +SKIP
    ('Release notes', 'text/markdown')
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from markdown_it import MarkdownIt
from markdown_it.token import Token

from indexing.types import SourceDocument


class UnsupportedFormatError(ValueError):
    """Raised for a file type no loader handles yet."""


def load_path(path: Path, *, tenant: str = "default", document_id: str | None = None) -> SourceDocument:
    """Load one file by its suffix; the document id defaults to the file's resolved path."""
    path = Path(path)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        accepted = ", ".join(sorted(_LOADERS))
        raise UnsupportedFormatError(
            f"cannot load {str(path)!r}: files ending in {path.suffix or '(no suffix)'!r} are not "
            f"supported; accepted suffixes: {accepted}"
        )
    return loader(path, tenant=tenant, document_id=document_id)


def load_text(path: Path, *, tenant: str = "default", document_id: str | None = None) -> SourceDocument:
    """Load a plain-text file as is (newlines normalised); the title is the file name."""
    text = _normalise(_read_utf8(path))
    return _document(path, text, title=_title_from_name(path), tenant=tenant, document_id=document_id,
                     content_type="text/plain", headings=[])


def load_markdown(path: Path, *, tenant: str = "default", document_id: str | None = None) -> SourceDocument:
    """Load a Markdown file rendered to plain text; the title is its first level-1 heading."""
    text, headings, h1 = markdown_to_text(_read_utf8(path))
    return _document(path, text, title=h1 or _title_from_name(path), tenant=tenant,
                     document_id=document_id, content_type="text/markdown", headings=headings)


def markdown_to_text(markdown: str) -> tuple[str, list[str], str | None]:
    """Render Markdown to plain text: (text, headings in order, first level-1 heading).

    Blocks are separated by blank lines; headings, list items and table rows each become
    their own line; code is kept verbatim; raw HTML blocks are dropped.
    """
    tokens = MarkdownIt("commonmark").enable("table").parse(_normalise(markdown))
    blocks: list[tuple[str, bool]] = []  # (text, is a list item or table row)
    headings: list[str] = []
    first_h1: str | None = None
    lists: list[list[int]] = []  # one entry per open list: [next number] or [] for bullets
    item_prefix: str | None = None
    row: list[str] | None = None
    in_heading: str | None = None
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            in_heading = token.tag
        elif kind == "heading_close":
            in_heading = None
        elif kind == "bullet_list_open":
            lists.append([])
        elif kind == "ordered_list_open":
            lists.append([int(token.attrGet("start") or 1)])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                blocks.append(("", False))  # a blank line between one list and the next
        elif kind == "list_item_open":
            counter = lists[-1] if lists else []
            indent = "  " * (len(lists) - 1)
            if counter:
                item_prefix = f"{indent}{counter[0]}. "
                counter[0] += 1
            else:
                item_prefix = f"{indent}- "
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            blocks.append((" | ".join(row), True))
            row = None
        elif kind in ("fence", "code_block"):
            blocks.append((token.content.rstrip("\n"), False))
        elif kind == "inline":
            text = _render_inline(token.children or [])
            if row is not None:
                row.append(text)
            elif in_heading is not None:
                headings.append(text)
                if in_heading == "h1" and first_h1 is None:
                    first_h1 = text
                blocks.append((text, False))
            elif item_prefix is not None:
                blocks.append((item_prefix + text, True))
                item_prefix = None
            else:
                blocks.append((text, False))
    text = _join_blocks(blocks)
    return text, headings, first_h1


def _join_blocks(blocks: list[tuple[str, bool]]) -> str:
    """Blank lines between blocks, but consecutive list items and table rows stay adjacent."""
    out: list[str] = []
    previous_is_line = False
    for block, is_line in blocks:
        if not block.strip():
            previous_is_line = False
            continue
        if out:
            out.append("\n" if previous_is_line and is_line else "\n\n")
        out.append(block)
        previous_is_line = is_line
    return "".join(out)


def _render_inline(children: list[Token]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(_render_inline(child.children or []))
    return "".join(parts).strip()


def _document(path: Path, text: str, *, title: str, tenant: str, document_id: str | None,
              content_type: str, headings: list[str]) -> SourceDocument:
    resolved = Path(path).resolve()
    return SourceDocument(
        id=document_id or str(resolved),
        tenant=tenant,
        title=title,
        text=text,
        source=str(resolved),
        metadata={"path": str(resolved), "content_type": content_type, "headings": headings},
    )


def _read_utf8(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"cannot load {str(path)!r}: it is not UTF-8 text ({exc}); re-encode it as UTF-8") from exc


def _normalise(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _title_from_name(path: Path) -> str:
    return Path(path).stem.replace("_", " ").replace("-", " ").strip()


_LOADERS: dict[str, Callable[..., SourceDocument]] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
}
