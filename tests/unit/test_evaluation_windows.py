"""MetricWindow summaries and detect_regression decisions."""

import pytest

from evaluation.scoring import AnswerScores
from evaluation.windows import MetricWindow, detect_regression


def scores(rouge_l=None, context_overlap=None, latency_ms=100.0, answer_tokens=10) -> AnswerScores:
    return AnswerScores(
        rouge_l=rouge_l,
        token_f1=rouge_l,
        exact_match=None if rouge_l is None else float(rouge_l == 1.0),
        context_overlap=context_overlap,
        latency_ms=latency_ms,
        answer_tokens=answer_tokens,
    )


def test_empty_window_summarises_to_zero_count():
    assert MetricWindow().summary() == {"count": 0}


def test_summary_means_skip_answers_without_the_metric():
    window = MetricWindow()
    window.add(scores(rouge_l=1.0, context_overlap=0.5))
    window.add(scores(rouge_l=None, context_overlap=1.0))
    window.add(scores(rouge_l=0.5, context_overlap=None))
    summary = window.summary()
    assert summary["count"] == 3
    assert summary["rouge_l"] == 0.75 and summary["rouge_l_count"] == 2
    assert summary["context_overlap"] == 0.75 and summary["context_overlap_count"] == 2
    assert summary["exact_match"] == 0.5


def test_summary_omits_a_metric_no_answer_had():
    window = MetricWindow()
    window.add(scores(rouge_l=None, context_overlap=0.5))
    assert "rouge_l" not in window.summary()


def test_summary_reports_latency_percentiles():
    window = MetricWindow()
    for latency in range(1, 101):  # 1..100 ms
        window.add(scores(latency_ms=float(latency)))
    summary = window.summary()
    assert summary["latency_p50_ms"] == pytest.approx(50.5)
    assert summary["latency_p95_ms"] == pytest.approx(95.05)


def test_window_keeps_only_the_latest_answers():
    window = MetricWindow(size=2)
    for value in (0.0, 1.0, 1.0):
        window.add(scores(rouge_l=value))
    assert window.summary()["count"] == 2
    assert window.summary()["rouge_l"] == 1.0


def test_window_size_must_be_positive():
    with pytest.raises(ValueError, match="size"):
        MetricWindow(size=0)


def test_drop_beyond_tolerance_is_a_regression():
    assert detect_regression({"rouge_l": 0.60}, {"rouge_l": 0.55})


def test_drop_within_tolerance_is_not_a_regression():
    assert not detect_regression({"rouge_l": 0.60}, {"rouge_l": 0.59})


def test_improvement_is_not_a_regression():
    assert not detect_regression({"rouge_l": 0.60}, {"rouge_l": 0.70})


def test_regression_is_checked_on_the_chosen_metric():
    baseline, current = {"rouge_l": 0.6, "context_overlap": 0.9}, {"rouge_l": 0.6, "context_overlap": 0.7}
    assert detect_regression(baseline, current, metric="context_overlap")
    assert not detect_regression(baseline, current, metric="rouge_l")


def test_latency_regresses_upwards():
    assert detect_regression({"latency_p95_ms": 200.0}, {"latency_p95_ms": 260.0}, metric="latency_p95_ms", tolerance=50)
    assert not detect_regression({"latency_p95_ms": 200.0}, {"latency_p95_ms": 100.0}, metric="latency_p95_ms")


def test_missing_metric_is_no_evidence_of_regression():
    assert not detect_regression({"count": 5}, {"rouge_l": 0.1})


def test_negative_tolerance_is_rejected():
    with pytest.raises(ValueError, match="tolerance"):
        detect_regression({"rouge_l": 0.6}, {"rouge_l": 0.6}, tolerance=-0.1)


def test_summaries_of_two_windows_feed_regression_detection():
    baseline, current = MetricWindow(), MetricWindow()
    for _ in range(10):
        baseline.add(scores(rouge_l=0.8))
        current.add(scores(rouge_l=0.5))
    assert detect_regression(baseline.summary(), current.summary())
