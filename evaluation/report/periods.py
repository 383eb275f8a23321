"""Canary periods from the decision trail: a `canary` decision opens one for its version, the next
`promote`, `rollback` or `reject` of that version closes it; one still open runs until now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from evaluation.report.data import Decision

CLOSING_ACTIONS = {"promote": "promoted", "rollback": "rolled back", "reject": "rejected"}


@dataclass(frozen=True)
class CanaryPeriod:
    version: str
    tenant: str | None
    start: datetime
    end: datetime
    outcome: str  # promoted, rolled back, rejected, or running


def canary_periods(decisions: list[Decision], *, until: datetime) -> list[CanaryPeriod]:
    """Periods in the order they started; `decisions` oldest first."""
    open_: dict[str, Decision] = {}
    periods: list[CanaryPeriod] = []
    for decision in decisions:
        if decision.action == "canary":
            open_.setdefault(decision.version, decision)
        elif decision.action in CLOSING_ACTIONS and decision.version in open_:
            start = open_.pop(decision.version)
            periods.append(CanaryPeriod(decision.version, start.tenant, start.at, decision.at, CLOSING_ACTIONS[decision.action]))
    periods += [CanaryPeriod(d.version, d.tenant, d.at, max(until, d.at), "running") for d in open_.values()]
    return sorted(periods, key=lambda p: p.start)
