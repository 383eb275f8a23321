"""Corrections worth learning from: refuse the unusable ones and fold repeats, each with its reason.

Users correct the same question again and again ("Q3 revenue?" five times, with or without the
trailing "M"). Trained on as five examples that one fact would outweigh the rest, and counted as
five it would trigger a run on its own. So corrections of the same question (normalised text) whose
wording is at least `similarity` alike (difflib ratio) fold into one, the latest kept::

    kept, dropped = fold(corrections, similarity=0.9, max_chars=2000)
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence

from pydantic import BaseModel


class Correction(BaseModel):
    """A correction of one answer: the question it corrects and what the answer should have been."""

    id: str
    question: str
    text: str


class Dropped(BaseModel):
    id: str
    reason: str


def normalise(text: str) -> str:
    """Case, accents, punctuation and spacing do not make a different question."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def refusal(text: str | None, max_chars: int) -> str | None:
    """Why a correction cannot be learned from, or None when it can."""
    if text is None or not text.strip():
        return "empty correction: say what the answer should have been"
    if len(text) > max_chars:
        return f"correction of {len(text)} characters is longer than the limit of {max_chars}: keep to the answer"
    return None


def fold(corrections: Sequence[Correction], *, similarity: float, max_chars: int) -> tuple[list[Correction], list[Dropped]]:
    """The corrections to learn from (oldest first, each the latest of its fold) and the dropped ones with why."""
    dropped: list[Dropped] = []
    kept: list[Correction] = []
    for c in reversed(corrections):  # newest first: a repeat folds into the latest one
        if (why := refusal(c.text, max_chars)) is not None:
            dropped.append(Dropped(id=c.id, reason=why))
            continue
        question = normalise(c.question)
        later = next((k for k in kept if normalise(k.question) == question
                      and difflib.SequenceMatcher(None, normalise(k.text), normalise(c.text)).ratio() >= similarity), None)
        if later is not None:
            dropped.append(Dropped(id=c.id, reason=f"folded into {later.id}: the same question corrected alike"))
            continue
        kept.append(c)
    return kept[::-1], dropped[::-1]
