"""Citation validity: does each `[n]` marker in an answer point to a passage that supports its sentence?

Why: an answer can carry markers and still be ungrounded: the model invents `[7]` with four
passages, or cites passage 2 for a claim that only passage 3 makes. Support is defined simply, so
it is cheap and deterministic: the sentence's content tokens (markers removed, lowercased, no
punctuation or stopwords) must occur in the cited passage for at least `SUPPORT` (half) of them.
A sentence with no content tokens (a bare "[1]") supports nothing, so its markers are invalid.

    >>> citation_validity("Ostra is 612 km long [1]. It is blue [2].", ["The Ostra river is 612 km long."])
    0.5
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agents.citations import cited_numbers
from evaluation.metrics.context_overlap.context_overlap import content_tokens

SUPPORT = 0.5  # share of a sentence's content tokens its cited passage must contain
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKERS = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")


def supports(sentence: str, passage: str, threshold: float = SUPPORT) -> bool:
    claim = content_tokens(_MARKERS.sub(" ", sentence))
    if not claim:
        return False
    found = set(content_tokens(passage))
    return sum(token in found for token in claim) / len(claim) >= threshold


def citation_validity(answer: str, passages: Sequence[str], threshold: float = SUPPORT) -> float | None:
    """The share of the answer's markers (each sentence's own, duplicates in one sentence counted once)
    that name an existing passage supporting their sentence; None when the answer has no markers."""
    verdicts = [1 <= n <= len(passages) and supports(sentence, passages[n - 1], threshold)
                for sentence in _SENTENCE_END.split(answer) for n in cited_numbers(sentence)]
    return sum(verdicts) / len(verdicts) if verdicts else None
