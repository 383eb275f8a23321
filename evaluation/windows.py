"""Rolling summaries of recent answer scores, and the regression test between two of them.

Why: a single answer's score is noise; a model version is judged by the mean over its recent
answers. The eval worker keeps one window per model version and compares the candidate's
summary with the active version's to decide promotion or rollback.

    >>> window = MetricWindow(size=100)
    >>> window.add(scores)                      # an AnswerScores
    >>> detect_regression(baseline_window.summary(), window.summary(), metric="rouge_l")
    False
"""

from collections import deque
from statistics import fmean

import numpy as np

from evaluation.scoring import AnswerScores

QUALITY_METRICS = ("rouge_l", "token_f1", "exact_match", "context_overlap")
# Summary keys where a larger value is worse; every other key is higher-is-better.
LOWER_IS_BETTER = frozenset({"latency_p50_ms", "latency_p95_ms", "answer_tokens_mean"})


class MetricWindow:
    """The last `size` answers' scores; older ones fall out as new ones arrive."""

    def __init__(self, size: int = 100) -> None:
        if size < 1:
            raise ValueError(f"window size must be at least 1, got {size}")
        self.size = size
        self._scores: deque[AnswerScores] = deque(maxlen=size)

    def add(self, scores: AnswerScores) -> None:
        self._scores.append(scores)

    def __len__(self) -> int:
        return len(self._scores)

    def summary(self) -> dict[str, float]:
        """Means of each quality metric over answers where it was measured, latency p50/p95, count.

        A quality metric is absent (not 0.0) when no answer in the window had it, and
        `<metric>_count` says how many answers its mean rests on, so a caller can refuse to
        judge a mean of three. An empty window summarises to {"count": 0}.
        """
        summary: dict[str, float] = {"count": len(self._scores)}
        if not self._scores:
            return summary
        for metric in QUALITY_METRICS:
            values = [v for s in self._scores if (v := getattr(s, metric)) is not None]
            if values:
                summary[metric] = fmean(values)
                summary[f"{metric}_count"] = len(values)
        latencies = [s.latency_ms for s in self._scores]
        summary["latency_p50_ms"] = float(np.percentile(latencies, 50))
        summary["latency_p95_ms"] = float(np.percentile(latencies, 95))
        summary["answer_tokens_mean"] = fmean(s.answer_tokens for s in self._scores)
        return summary


def detect_regression(
    baseline: dict[str, float], current: dict[str, float], *, metric: str = "rouge_l", tolerance: float = 0.02
) -> bool:
    """True when `current` is worse than `baseline` on `metric` by more than `tolerance`.

    The tolerance is absolute, in the metric's own units (0.02 of a [0, 1] score; milliseconds
    for latency), and the direction follows the metric: latency and length regress upwards.
    When either side has no value for `metric` there is no evidence of a regression, so the
    answer is False; callers wanting a minimum sample check `<metric>_count` first.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if metric not in baseline or metric not in current:
        return False
    delta = current[metric] - baseline[metric]
    if metric in LOWER_IS_BETTER:
        return delta > tolerance
    return -delta > tolerance
