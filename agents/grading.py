"""Grade retrieved passages and rewrite a failed search, both without calling the LLM.

Grading: a passage is relevant when it contains at least `threshold` (0.5) of the query's content
terms (English analysis: lowercase, stopwords and question words dropped, Snowball stems; title
included). The threshold keeps a passage for nearly every answerable question and none for
off-topic ones, while the gold passage stays in the context; re-embedding passages for a cosine
grade separates no better and costs far more, and SmolLM2-135M as a yes/no grader costs seconds
per passage on CPU. The measurements are in docs/agent-graph.md ("Why the decisions are rules").

Rewrite: when nothing is relevant, search again with the question's content terms plus those of
the earlier user turns of the conversation (a follow-up like "How tall is it?" names its subject
only in an earlier turn). When that adds nothing new, there is nothing to retry with.

    >>> grade("How long is the Ostra river?", hits)                      # doctest: +SKIP
    [1.0, 0.33, 0.0, 0.0]
    >>> rewrite("How tall is it?", ["Where is the Veltrin Observatory?"])
    'tall veltrin observatory'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from indexing.backends.analyzer import EnglishAnalyzer
from indexing.types import SearchHit

RELEVANCE_THRESHOLD = 0.5
# Words that say what kind of answer is wanted but never what it is about.
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how do does did done doing was were is are am be been being has have had "
    "can could should would may might must shall will many much long often i me my you your we our us he she him her "
    "his hers its it they them their tell know about please some any there here also just like name called".split())
_WORD = re.compile(r"\w+", re.UNICODE)


@cache
def _analyzer() -> EnglishAnalyzer:
    return EnglishAnalyzer()


def content_terms(text: str) -> list[str]:
    """Stemmed terms of `text` without stopwords and question words, in order, duplicates dropped."""
    words = [w for w in _WORD.findall(text.lower()) if w not in QUESTION_WORDS]
    return list(dict.fromkeys(_analyzer()(" ".join(words))))


def relevance(question_terms: Sequence[str], hit: SearchHit) -> float:
    """Share of the question's content terms found in the passage (title and text)."""
    if not question_terms:
        return 0.0
    passage = set(_analyzer()(hit.chunk.embedding_text()))
    return sum(term in passage for term in question_terms) / len(question_terms)


def grade(question: str, hits: Sequence[SearchHit]) -> list[float]:
    terms = content_terms(question)
    return [round(relevance(terms, hit), 4) for hit in hits]


def rewrite(question: str, earlier_questions: Sequence[str] = ()) -> str:
    """A keyword query: the question's content words, then new ones from earlier user turns (latest first)."""
    seen: set[str] = set()
    words: list[str] = []
    for text in (question, *reversed(earlier_questions)):
        for word in _WORD.findall(text.lower()):
            if word in QUESTION_WORDS:
                continue
            stems = _analyzer()(word)
            if stems and stems[0] not in seen:
                seen.add(stems[0])
                words.append(word)
    return " ".join(words)
