"""Split documents into overlapping, structure-following passages sized in tokens.

Why this shape: retrieval quality depends on passages that are about one thing (so cut at
headings and paragraph ends before cutting inside a paragraph), that fit the embedder's
window (so sizes are counted in tokens, not characters), and that keep a little context
across a cut inside a paragraph (so a sentence split from its predecessor still carries it).
Every chunk's text is an exact slice of the document text, which makes "no text lost"
checkable and keeps citations pointing at real character offsets.

    >>> chunker = Chunker(max_tokens=128, overlap_tokens=32)
    >>> chunks = chunker.split(SourceDocument(id="d1", text="A first sentence. A second one."))
    >>> [c.text for c in chunks]
    ['A first sentence. A second one.']
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from indexing.types import Chunk, SourceDocument

TokenCounter = Callable[[str], int]

_WORDISH = re.compile(r"[^\W\d_]+|\d+|[^\w\s]", re.UNICODE)


def approximate_tokens(text: str) -> int:
    """A subword-token estimate without a tokenizer: one per 7 letters of a word, one per 2
    digits of a number, one per punctuation mark: close to MiniLM's WordPiece count on English
    prose, and never calling a tokenizer in the ingest path."""
    total = 0
    for match in _WORDISH.finditer(text):
        n = match.end() - match.start()
        total += 1 + (n - 1) // (2 if text[match.start()].isdigit() else 7)
    return total


def chunk_id(tenant: str, document_id: str, text: str, occurrence: int = 0) -> str:
    """Content hash naming a chunk; ``occurrence`` separates repeated passages of one document."""
    key = "\x1f".join([tenant, document_id, text] + ([str(occurrence)] if occurrence else []))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class _Unit:
    """A sentence, line or word window: the smallest piece the chunker moves."""

    start: int
    end: int
    tokens: int
    paragraph: int
    first_in_paragraph: bool
    heading: bool
    section: str | None


class Chunker:
    """Structure-following, token-sized splitter with bounded overlap.

    Rules, in order: a heading starts a new chunk once the current one is a quarter full; a
    paragraph that would not fit whole starts a new chunk once the current one is half full;
    otherwise chunks are packed sentence by sentence up to ``max_tokens``. A new chunk starts
    with the last sentences (or, for a long sentence, words) of the previous one, at most
    ``overlap_tokens`` of them, when the cut falls inside a paragraph. Sentences longer than
    ``max_tokens`` are cut into word windows.

    The defaults (128/32) were chosen on SciFact train with benchmarks/retrieval_scifact.py
    (figures in benchmarks/README.md, "Tuning sweep"): smaller passages sharpen MiniLM more than
    they cost BM25, and they stay well inside MiniLM's 256-token window with the title prepended.
    """

    def __init__(self, max_tokens: int = 128, overlap_tokens: int = 32,
                 token_counter: TokenCounter | None = None) -> None:
        if max_tokens < 8:
            raise ValueError(f"max_tokens={max_tokens} is too small; use at least 8")
        if not 0 <= overlap_tokens < max_tokens // 2:
            raise ValueError(f"overlap_tokens={overlap_tokens} must be >= 0 and below max_tokens/2 "
                             f"({max_tokens // 2})")
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.count_tokens: TokenCounter = token_counter or approximate_tokens

    def to_dict(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "overlap_tokens": self.overlap_tokens}

    def split(self, doc: SourceDocument) -> list[Chunk]:
        text = doc.text
        units = self._units(text, set(doc.metadata.get("headings") or ()))
        spans = self._pack(units, text)
        base_metadata = {k: v for k, v in doc.metadata.items() if k != "headings"}
        if doc.source is not None:
            base_metadata.setdefault("source", doc.source)
        chunks: list[Chunk] = []
        seen: dict[str, int] = {}
        for ordinal, (start, end, section) in enumerate(spans):
            body = text[start:end]
            occurrence = seen.get(body, 0)
            seen[body] = occurrence + 1
            chunks.append(Chunk(
                id=chunk_id(doc.tenant, doc.id, body, occurrence),
                document_id=doc.id,
                tenant=doc.tenant,
                ordinal=ordinal,
                text=body,
                title=doc.title,
                metadata={**base_metadata, "char_start": start, "char_end": end, "section": section},
                access=list(doc.access),
            ))
        return chunks

    # -- units ---------------------------------------------------------------------------

    def _units(self, text: str, known_headings: set[str]) -> list[_Unit]:
        units: list[_Unit] = []
        section: str | None = None
        paragraphs = [(m.start(), m.end()) for m in _PARAGRAPH.finditer(text)]
        for p_index, (p_start, p_end) in enumerate(paragraphs):
            para = text[p_start:p_end]
            has_next = p_index + 1 < len(paragraphs)
            heading = _is_heading(para, known_headings, has_next)
            if heading:
                section = para.strip().lstrip("#").strip()
            first = True
            for s_start, s_end in _sentences(para):
                start, end = p_start + s_start, p_start + s_end
                for w_start, w_end, tokens in self._fit(text, start, end):
                    units.append(_Unit(w_start, w_end, tokens, p_index, first, heading, section))
                    first = False
        return units

    def _fit(self, text: str, start: int, end: int) -> list[tuple[int, int, int]]:
        """The span itself if it fits in a chunk, else word windows that each fit."""
        tokens = self.count_tokens(text[start:end])
        if tokens <= self.max_tokens:
            return [(start, end, tokens)]
        windows: list[tuple[int, int, int]] = []
        w_start, w_tokens, w_end = None, 0, start
        for word in re.finditer(r"\S+", text[start:end]):
            n = self.count_tokens(word.group())
            if w_start is not None and w_tokens + n > self.max_tokens:
                windows.append((w_start, w_end, w_tokens))
                w_start, w_tokens = None, 0
            if w_start is None:
                w_start = start + word.start()
            if n > self.max_tokens:  # one enormous "word" (a URL, a base64 blob): keep it whole
                n = self.max_tokens
            w_tokens += n
            w_end = start + word.end()
        if w_start is not None:
            windows.append((w_start, w_end, w_tokens))
        return windows

    # -- packing ---------------------------------------------------------------------------

    def _pack(self, units: list[_Unit], text: str) -> list[tuple[int, int, str | None]]:
        paragraph_tokens: dict[int, int] = {}
        for u in units:
            paragraph_tokens[u.paragraph] = paragraph_tokens.get(u.paragraph, 0) + u.tokens
        spans: list[tuple[int, int, str | None]] = []
        current: list[_Unit] = []
        fresh = 0  # how many units of ``current`` are new (not overlap copied from the previous chunk)

        def tokens_of(us: list[_Unit]) -> int:
            return sum(u.tokens for u in us)

        for unit in units:
            if fresh:
                size = tokens_of(current)
                cut_at_heading = unit.heading and not current[-1].heading and size >= self.max_tokens // 4
                paragraph_wont_fit = (unit.first_in_paragraph and size >= self.max_tokens // 2
                                      and size + paragraph_tokens[unit.paragraph] > self.max_tokens)
                if cut_at_heading or paragraph_wont_fit or size + unit.tokens > self.max_tokens:
                    # Headings belong to what follows them: never end a chunk on one.
                    carried: list[_Unit] = []
                    while fresh > len(carried) + 1 and current[-1].heading:
                        carried.insert(0, current.pop())
                    spans.append((current[0].start, current[-1].end, _section_of(current, fresh)))
                    # Overlap only where a cut splits a paragraph; a cut at a structure boundary needs none.
                    overlap = [] if (carried or unit.first_in_paragraph) else self._tail(current, text)
                    current = overlap + carried
                    while current and tokens_of(current) + unit.tokens > self.max_tokens:
                        current.pop(0)
                    fresh = len(carried)
            current.append(unit)
            fresh += 1
        if fresh:
            spans.append((current[0].start, current[-1].end, _section_of(current, fresh)))
        return spans

    def _tail(self, emitted: list[_Unit], text: str) -> list[_Unit]:
        """The overlap for the next chunk: trailing whole units, or trailing words of the last."""
        if self.overlap_tokens == 0:
            return []
        tail: list[_Unit] = []
        budget = self.overlap_tokens
        for u in reversed(emitted):
            if u.tokens > budget or u.heading:
                break
            tail.insert(0, u)
            budget -= u.tokens
        if tail:
            return tail
        last = emitted[-1]
        if last.heading:
            return []
        words = list(re.finditer(r"\S+", text[last.start:last.end]))
        start, used = last.end, 0
        for word in reversed(words[1:]):  # never the whole unit: it did not fit the budget
            n = self.count_tokens(word.group())
            if used + n > self.overlap_tokens:
                break
            used += n
            start = last.start + word.start()
        if used == 0:
            return []
        return [_Unit(start, last.end, self.count_tokens(text[start:last.end]), last.paragraph,
                      False, False, last.section)]


_PARAGRAPH = re.compile(r"\S(?:[^\n]|\n(?![ \t]*\n))*")  # runs of text without a blank line
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*[ \t]+(?=[^\sa-z])|[ \t]*\n\s*")


def _sentences(para: str) -> list[tuple[int, int]]:
    """Sentence and line spans inside a paragraph (offsets relative to it), whitespace-trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(para):
        end = m.start()
        # keep closing quotes/brackets with their sentence
        while end < m.end() and para[end] in "\"')]":
            end += 1
        if para[start:end].strip():
            spans.append(_trim(para, start, end))
        start = m.end()
    if para[start:].strip():
        spans.append(_trim(para, start, len(para)))
    return spans


def _trim(s: str, start: int, end: int) -> tuple[int, int]:
    while start < end and s[start].isspace():
        start += 1
    while end > start and s[end - 1].isspace():
        end -= 1
    return start, end


def _is_heading(para: str, known: set[str], has_next: bool) -> bool:
    line = para.strip()
    if "\n" in line:
        return False
    if line.startswith("#"):
        return True
    if known:
        return line in known
    # Plain text: a short single line without closing punctuation, followed by more text.
    return has_next and len(line.split()) <= 10 and line[-1] not in ".!?:;,\"')]" \
        and not line.startswith(("- ", "* ")) and not line[:1].isdigit()


def _section_of(units: list[_Unit], fresh: int) -> str | None:
    return units[len(units) - fresh].section
