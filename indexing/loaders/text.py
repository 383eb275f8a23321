"""Plain text and Markdown to plain text, plus the text-shaping helpers other parsers share.

Markdown is rendered rather than indexed raw so that markup (``**``, link targets, table
pipes) never pollutes BM25 terms or embeddings, while headings survive as their own lines
(and are listed in ``metadata["headings"]``) so the chunker can follow the document's
structure.

    >>> parse_markdown(b"# Release notes\\n\\nFixed **two** bugs.").text
    'Release notes\\n\\nFixed two bugs.'
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

from indexing.loaders.errors import CorruptDocumentError
from indexing.loaders.parsed import ParsedText


def parse_text(data: bytes, *, name: str = "", charset: str | None = None) -> ParsedText:
    """Plain text as is (newlines normalised, trailing spaces dropped); no title of its own."""
    return ParsedText(text=normalise_text(decode_text(data, name=name, charset=charset)),
                      content_type="text/plain", metadata={"headings": []})


def parse_markdown(data: bytes, *, name: str = "", charset: str | None = None) -> ParsedText:
    """Markdown rendered to plain text; the title is its first level-1 heading."""
    text, headings, h1 = markdown_to_text(decode_text(data, name=name, charset=charset))
    return ParsedText(text=text, content_type="text/markdown", title=h1, metadata={"headings": headings})


def markdown_to_text(markdown: str) -> tuple[str, list[str], str | None]:
    """Render Markdown to plain text: (text, headings in order, first level-1 heading).

    Blocks are separated by blank lines; headings, list items and table rows each become
    their own line; code is kept verbatim; raw HTML blocks are dropped.
    """
    tokens = MarkdownIt("commonmark").enable("table").parse(normalise_text(markdown))
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
    return join_blocks(blocks), headings, first_h1


def join_blocks(blocks: list[tuple[str, bool]]) -> str:
    """Blank lines between blocks, but consecutive list items and table rows (``is_line``) stay adjacent."""
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


def decode_text(data: bytes, *, name: str = "", charset: str | None = None) -> str:
    """Decode text strictly (a BOM wins, then ``charset``, then UTF-8): a wrong guess would index mojibake."""
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") or not charset else charset
    try:
        return data.decode(encoding)
    except LookupError as exc:
        raise CorruptDocumentError(f"cannot load {name or 'the document'!r}: unknown charset {charset!r}; "
                                   "send it as UTF-8") from exc
    except UnicodeDecodeError as exc:
        raise CorruptDocumentError(f"cannot load {name or 'the document'!r}: it is not {_label(encoding)} text "
                                   f"({exc}); re-encode it as UTF-8") from exc


def normalise_text(text: str) -> str:
    """Unix newlines, no trailing spaces, no leading or trailing blank lines."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _label(encoding: str) -> str:
    return "UTF-8" if encoding.lower().replace("_", "-") in ("utf-8", "utf-8-sig", "utf8") else encoding


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
