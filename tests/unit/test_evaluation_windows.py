"""VersionWindow: counts, means, intervals and the down-vote / error shares."""

from __future__ import annotations

import pytest

from evaluation.windows import MetricSummary, VersionWindow


def test_summary_has_mean_and_t_interval() -> None:
    s = MetricSummary.of([0.0, 1.0, 0.5, 0.5])
    assert s is not None and (s.count, s.mean) == (4, 0.5)
    assert s.ci_low == pytest.approx(0.5 - 3.182446 * s.std / 2, abs=1e-4) and s.ci_high == pytest.approx(1 - s.ci_low)


def test_no_values_is_not_measurable_and_one_value_has_no_spread() -> None:
    assert MetricSummary.of([]) is None
    one = MetricSummary.of([0.3])
    assert one is not None and (one.ci_low, one.mean, one.ci_high) == (0.3, 0.3, 0.3)


def test_window_skips_unmeasured_metrics_and_counts_flags() -> None:
    rows = [{"token_f1": None, "bleu": 0.5, "downvote": 1.0}, {"token_f1": 1.0, "bleu": 0.7, "error": 1.0}, {"token_f1": 0.0}]
    w = VersionWindow.of("v", rows, failed_tasks=1)
    assert (w.answers, w.downvotes, w.errors) == (4, 1, 2)
    assert w.summary("token_f1") == MetricSummary.of([1.0, 0.0]) and w.summary("rouge_l") is None
    summaries = w.summaries()
    assert set(summaries) == {"token_f1", "bleu", "downvote", "error"}
    assert summaries["downvote"].mean == 0.25 and 0 < summaries["downvote"].ci_low < 0.25 < summaries["downvote"].ci_high
    assert summaries["error"].mean == 0.5


def test_empty_window_has_no_summaries() -> None:
    w = VersionWindow.of("v", [])
    assert (w.summaries(), w.downvote_share, w.error_share) == ({}, None, None)
