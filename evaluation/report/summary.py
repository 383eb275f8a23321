"""The table at the top of the report: what serves each line now, and how much happened."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from evaluation.report.data import ReportData


@dataclass(frozen=True)
class LineSummary:
    line: str  # a tenant, or "shared"
    active: str
    canary: str  # "version (share)" or "—"


@dataclass(frozen=True)
class Summary:
    lines: list[LineSummary]
    counts: list[tuple[str, int]]


def summarise(data: ReportData) -> Summary:
    by_line: dict[str | None, dict[str, str]] = {}
    for line in data.lines:
        slot = by_line.setdefault(line.tenant, {})
        if line.state == "active":
            slot["active"] = line.version
        else:
            slot["canary"] = f"{line.version} ({line.canary_share:.0%})" if line.canary_share else line.version
    if data.tenant is not None:
        by_line.setdefault(data.tenant, {})  # a tenant without its own version is served by the shared line: say so
    shared_active = by_line.get(None, {}).get("active", "—")
    lines = [LineSummary(tenant or "shared", slot.get("active") or f"{shared_active} (shared)", slot.get("canary", "—"))
             for tenant, slot in sorted(by_line.items(), key=lambda item: (item[0] is not None, item[0] or ""))]
    runs = Counter(run.state for run in data.runs)
    actions = Counter(d.action for d in data.decisions)
    ratings = Counter(r.rating for r in data.ratings)
    counts = [("answers scored", len(data.answers)), ("versions answering", len({a.version for a in data.answers})),
              ("ratings", len(data.ratings)), ("down-votes", ratings["down"]), ("corrections", sum(r.corrected for r in data.ratings)),
              ("training runs", len(data.runs)), *((f"runs {state}", count) for state, count in sorted(runs.items())),
              ("canaries started", actions["canary"]), ("promotions", actions["promote"]), ("rollbacks", actions["rollback"])]
    return Summary(lines, counts)
