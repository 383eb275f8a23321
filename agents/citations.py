"""Inline citations: the answer's `[n]` markers name the n-th context passage; map them to chunk ids.

The answer text is never rewritten: a marker that names no passage (the model invented `[7]`
with four passages) is simply not a citation. Grouped markers like `[1, 3]` or `[1][2]` count.

    >>> cited_ids("Ostra is 612 km long [2].", ["c1", "c2"])
    ['c2']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def cited_numbers(answer: str) -> list[int]:
    """Every `[n]` number in order of first appearance, duplicates dropped."""
    numbers = (int(n) for group in _MARKER.findall(answer) for n in group.split(","))
    return list(dict.fromkeys(numbers))


def cited_ids(answer: str, chunk_ids: Sequence[str]) -> list[str]:
    """The chunk ids the answer cites, in order of first citation; out-of-range markers are ignored."""
    return list(dict.fromkeys(chunk_ids[n - 1] for n in cited_numbers(answer) if 1 <= n <= len(chunk_ids)))
