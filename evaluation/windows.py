"""Windows of answer scores per model version (and tenant): what a version is judged on.

Why: a single answer's score is noise; a version is judged by the mean over the answers it gave,
with a confidence interval that says how much that mean can be trusted. A window is built from
the eval rows of one version (`EvalStore.rows`), so it is the same in every eval worker and
survives a restart; the eval worker keeps each version's latest summary in `version_windows` and
on `/metrics`, and the canary judge compares two windows of the same period.

Besides the quality metrics a window counts two shares over all of its answers: down-votes (the
answer's latest rating was "down"; an unrated answer counts as not down-voted) and errors (an
empty answer, or a task that failed on this version).

    >>> w = VersionWindow.of("v1", [{"token_f1": 1.0}, {"token_f1": 0.5, "downvote": 1.0}])
    >>> (w.answers, w.summary("token_f1").mean, w.downvotes)
    (2, 0.75, 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import fmean, stdev
from typing import Any

from pydantic import BaseModel, Field
from scipy import stats

# Metrics of an answer that a window summarises (higher is better, except perplexity and cost).
WINDOW_METRICS = ("rouge_l", "token_f1", "exact_match", "bleu", "context_overlap", "answer_relevance", "citation_validity",
                  "perplexity", "latency_ms", "answer_tokens")
DOWNVOTE, ERROR = "downvote", "error"  # per-answer flags (1.0 / 0.0) beside the metrics in an eval row
CONFIDENCE = 0.95


class MetricSummary(BaseModel):
    """Mean of one metric over a window's answers where it was measured, with a t-based 95% interval."""

    count: int = Field(ge=0)
    mean: float
    std: float = Field(ge=0, description="Sample standard deviation (0 with one value).")
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, values: list[float]) -> MetricSummary | None:
        """None for no values (not measurable); one value has an interval of zero width (nothing known about spread)."""
        if not values:
            return None
        mean = fmean(values)
        std = stdev(values) if len(values) > 1 else 0.0
        half = 0.0
        if len(values) > 1 and std > 0:
            half = float(stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1)) * std / math.sqrt(len(values))
        return cls(count=len(values), mean=mean, std=std, ci_low=mean - half, ci_high=mean + half)


@dataclass
class VersionWindow:
    """The answers of one version in some period: metric values, down-votes and errors."""

    version: str
    values: dict[str, list[float]] = field(default_factory=dict)
    answers: int = 0
    downvotes: int = 0
    errors: int = 0

    @classmethod
    def of(cls, version: str, rows: Iterable[Mapping[str, Any]], *, failed_tasks: int = 0) -> VersionWindow:
        """A window over eval rows' metrics dicts; `failed_tasks` are answers that never came (they count as errors)."""
        window = cls(version)
        for metrics in rows:
            window.add(metrics)
        window.answers += failed_tasks
        window.errors += failed_tasks
        return window

    def add(self, metrics: Mapping[str, Any]) -> None:
        self.answers += 1
        self.downvotes += int(bool(metrics.get(DOWNVOTE)))
        self.errors += int(bool(metrics.get(ERROR)))
        for name, value in metrics.items():
            if name not in (DOWNVOTE, ERROR) and isinstance(value, int | float) and math.isfinite(value):
                self.values.setdefault(name, []).append(float(value))

    def summary(self, metric: str) -> MetricSummary | None:
        return MetricSummary.of(self.values.get(metric, []))

    @property
    def downvote_share(self) -> float | None:
        return self.downvotes / self.answers if self.answers else None

    @property
    def error_share(self) -> float | None:
        return self.errors / self.answers if self.answers else None

    def summaries(self) -> dict[str, MetricSummary]:
        """Every summarisable metric plus the two shares (as 0/1 means), for `version_windows` and `/metrics`."""
        out = {name: s for name in WINDOW_METRICS if (s := self.summary(name)) is not None}
        if self.answers:
            out[DOWNVOTE] = _share_summary(self.downvotes, self.answers)
            out[ERROR] = _share_summary(self.errors, self.answers)
        return out


def _share_summary(hits: int, n: int) -> MetricSummary:
    """A share with its Wilson 95% interval (sound at 0 and 1, where a normal interval collapses)."""
    low, high = stats.binomtest(hits, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    p = hits / n
    return MetricSummary(count=n, mean=p, std=math.sqrt(p * (1 - p)), ci_low=float(low), ci_high=float(high))
