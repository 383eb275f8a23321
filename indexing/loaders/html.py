"""HTML to plain text with the document's structure kept, parsed by selectolax (the Lexbor HTML5 parser).

Why this shape: an HTML5-conformant parser copes with the broken markup found on real pages;
the text keeps one block per paragraph, heading, list item or table row (blank lines between
blocks, like the Markdown loader) so the chunker can follow the structure, and headings are
listed in ``metadata["headings"]``. What is not content is dropped: scripts, styles,
navigation, asides, footers, forms and hidden elements; when the page marks its main content
(``<main>``, or a single ``<article>``) only that is kept.

    >>> parse_html(b"<title>T</title><nav>menu</nav><h1>Intro</h1><p>Hello <b>world</b></p>").text
    'Intro\\n\\nHello world'
"""

from __future__ import annotations

import codecs
import re

from selectolax.lexbor import LexborHTMLParser, LexborNode

from indexing.loaders.parsed import ParsedText
from indexing.loaders.text import join_blocks

_DROPPED = frozenset(
    "script style noscript template nav aside footer form iframe frame frameset svg canvas math "
    "button select option textarea object embed audio video map head".split()
)
_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
_BLOCKS = frozenset(
    "address article blockquote caption dd details dialog div dl dt fieldset figcaption figure header "
    "hgroup hr legend li main ol p pre section summary table tbody td tfoot th thead tr ul body html".split()
) | _HEADINGS
_SPACE = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def parse_html(data: bytes, *, name: str = "", charset: str | None = None) -> ParsedText:
    """Parse an HTML page; the title is ``<title>``, else the first ``<h1>``."""
    tree = LexborHTMLParser(decode_html(data, charset=charset))
    title_node = tree.css_first("title")
    title = _collapse(title_node.text(deep=True)) if title_node is not None else ""
    root = _content_root(tree)
    text, headings, first_h1 = _render(root) if root is not None else ("", [], None)
    metadata: dict[str, object] = {"headings": headings}
    description = tree.css_first('meta[name="description"]')
    if description is not None and (description.attributes.get("content") or "").strip():
        metadata["description"] = _collapse(description.attributes["content"] or "")
    html = tree.css_first("html")
    if html is not None and (html.attributes.get("lang") or "").strip():
        metadata["language"] = (html.attributes["lang"] or "").strip()
    return ParsedText(text=text, content_type="text/html", title=title or first_h1, metadata=metadata)


def decode_html(data: bytes, *, charset: str | None = None) -> str:
    """Decode as browsers do, leniently: BOM, then the transport charset, then ``<meta charset>``,
    then UTF-8, falling back to windows-1252 (the HTML5 default for unlabelled legacy pages)."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    declared = charset
    if declared is None:
        found = _META_CHARSET.search(data[:4096])
        declared = found.group(1).decode("ascii") if found else None
    if declared:
        try:
            return data.decode(declared, errors="replace")
        except LookupError:
            pass  # an unknown label: fall through to the defaults, as a browser would
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _content_root(tree: LexborHTMLParser) -> LexborNode | None:
    main = tree.css_first("main") or tree.css_first('[role="main"]')
    if main is not None:
        return main
    articles = tree.css("article")
    return articles[0] if len(articles) == 1 else tree.body


def _render(root: LexborNode) -> tuple[str, list[str], str | None]:
    """Walk the tree without recursion (pages can nest thousands deep) and emit blocks."""
    blocks: list[tuple[str, bool]] = []
    headings: list[str] = []
    first_h1: str | None = None
    inline: list[str] = []
    list_depth = 0
    items: list[str | None] = []  # per open <li>: its "- " prefix until its first line is out
    row: list[str] | None = None
    pre_depth = 0
    cell_depth = 0  # inside <td>/<th>, blocks are only spaces: the whole cell is one table value

    def flush(is_line: bool = False) -> str:
        text = "".join(inline)
        inline.clear()
        text = text.strip("\n") if pre_depth else _collapse(text)
        if text:
            prefix = items[-1] if items else None
            if prefix is not None:
                items[-1] = None
                text, is_line = prefix + text, True
            blocks.append((text, is_line))
        return text

    stack: list[tuple[LexborNode, bool]] = [(root, True)]
    while stack:
        node, entering = stack.pop()
        tag = node.tag or ""
        if entering:
            if tag == "-text":
                inline.append(node.text_content or "")
                continue
            if tag in _DROPPED or tag.startswith("-") or _hidden(node):
                continue
            if tag == "br":
                inline.append("\n" if pre_depth else " ")
                continue
            if tag in ("td", "th"):
                if not cell_depth:
                    inline.clear()
                cell_depth += 1
            elif cell_depth:
                if tag in _BLOCKS:
                    inline.append(" ")
            elif tag in _BLOCKS:
                if tag == "li":
                    flush()
                    items.append("  " * max(list_depth - 1, 0) + "- ")
                else:
                    flush(is_line=row is not None)
                if tag in ("ul", "ol"):
                    list_depth += 1
                elif tag == "tr":
                    row = []
                elif tag == "pre":
                    pre_depth += 1
            stack.append((node, False))
            children: list[LexborNode] = []
            child = node.child
            while child is not None:
                children.append(child)
                child = child.next
            stack.extend((c, True) for c in reversed(children))
            continue
        # leaving an element
        if tag in ("td", "th"):
            cell_depth -= 1
            if cell_depth:
                inline.append(" ")
            else:
                cell = _collapse("".join(inline))
                inline.clear()
                if row is not None:
                    row.append(cell)
        elif cell_depth:
            if tag in _BLOCKS:
                inline.append(" ")
        elif tag in _HEADINGS:
            text = flush()
            if text:
                headings.append(text)
                if tag == "h1" and first_h1 is None:
                    first_h1 = text
        elif tag == "tr":
            if row is not None and any(row):
                blocks.append((" | ".join(row), True))
            row = None
        elif tag == "li":
            flush()
            items.pop()
        elif tag in ("ul", "ol"):
            flush()
            list_depth -= 1
            if list_depth == 0:
                blocks.append(("", False))  # a blank line after a whole list
        elif tag == "table":
            blocks.append(("", False))
        elif tag == "pre":
            flush()
            pre_depth -= 1
        elif tag in _BLOCKS:
            flush()
    flush()
    return join_blocks(blocks), headings, first_h1


def _hidden(node: LexborNode) -> bool:
    attrs = node.attributes
    return "hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true"


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
