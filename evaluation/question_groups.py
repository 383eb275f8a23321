"""Which of a canary's answers it was taught to change, and which it must not break.

An adapter trained on a tenant's corrections answers the corrected questions differently on
purpose; on every other question it should answer as well as the version it replaces. Judging the
two groups apart (`evaluation/canary_judge.py`) keeps a large gain on the taught questions from
hiding a loss everywhere else. A question is *taught* when the tenant corrected an answer to the
same question (compared case- and whitespace-blind: the benchmark and users repeat a question
verbatim; a rephrasing counts as untaught, the conservative side for this check).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evaluation.windows import VersionWindow

TAUGHT, UNTAUGHT = "taught", "untaught"


def question_of(request: Mapping[str, Any]) -> str:
    """The question of a stored chat request: its last message's text."""
    messages = request.get("messages") or []
    content = messages[-1].get("content", "") if messages else ""
    return content if isinstance(content, str) else ""


def normalise(question: str) -> str:
    return " ".join(question.casefold().split())


def grouped_windows(version: str, rows: Iterable[tuple[str, Mapping[str, Any]]], taught: set[str]) -> dict[str, VersionWindow]:
    """`version`'s answers (question, metrics) split into a taught and an untaught window; `taught` holds normalised questions."""
    windows = {TAUGHT: VersionWindow(version), UNTAUGHT: VersionWindow(version)}
    for question, metrics in rows:
        windows[TAUGHT if normalise(question) in taught else UNTAUGHT].add(metrics)
    return windows
