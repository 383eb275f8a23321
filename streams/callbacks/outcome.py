"""What one delivery attempt came to, in the terms the sender decides on: done, try again, or give up."""

from __future__ import annotations

from dataclasses import dataclass

USER_AGENT = "ragloop-callbacks/0.1"


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool  # whether a later attempt may succeed (a 5xx, a timeout), as opposed to a bad address
    detail: str
