"""Stop-string handling shared by every engine, so all backends cut answers the same way.

A stop string ends the answer *before* it; a streaming consumer must never see part of one,
which is why :class:`StopStringFilter` holds back any tail that could still become one::

    text, hit = cut_at_stop("Paris. Next", ["."])        # ("Paris", True)
    f = StopStringFilter(["END"])
    f.feed("abc E") + f.feed("ND more") + f.flush()         # "abc "
"""

from __future__ import annotations


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(positions)], True) if positions else (text, False)


class StopStringFilter:
    """Turns raw text deltas into safe deltas: nothing after (or part of) a stop string leaks.

    ``feed`` returns the text that is now known to be safe; once ``stopped`` is true the
    answer is over and the producer should be told to stop.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.holdback = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.sent = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.text += piece
        cut, hit = cut_at_stop(self.text, self.stops)
        safe = len(cut) if hit else max(self.sent, len(self.text) - self.holdback)
        delta = (cut if hit else self.text)[self.sent : safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        self.stopped = hit
        return delta

    def flush(self) -> str:
        """The held-back tail once the producer ended without a stop string."""
        if self.stopped or len(self.text) <= self.sent:
            return ""
        delta, self.sent = self.text[self.sent :], len(self.text)
        return delta
