"""canary_judge.judge on synthetic windows: each branch (wait, rollback on a metric, on down-votes,
on errors, promote) and the guards (too few samples, a drop too small or not significant)."""

from __future__ import annotations

import pytest

from evaluation.canary_judge import judge, proportion_greater_p, welch_less_p
from evaluation.windows import VersionWindow
from trainers.policy import CanaryPolicy

POLICY = CanaryPolicy(min_samples=20, min_samples_to_abort=8, metrics=["token_f1"], max_drop=0.1,
                      max_downvote_increase=0.2, max_error_increase=0.1, alpha=0.05)


def window(version: str, f1: list[float], *, downvotes: int = 0, errors: int = 0) -> VersionWindow:
    rows = [{"token_f1": v, "downvote": float(n < downvotes), "error": float(n < errors)} for n, v in enumerate(f1)]
    return VersionWindow.of(version, rows)


GOOD = [0.8, 0.9, 0.85, 0.95, 0.75, 0.9, 0.8, 0.88] * 5  # 40 answers around 0.85


def test_too_few_canary_answers_wait_even_when_they_are_bad() -> None:
    verdict = judge(window("c", [0.0] * 7), window("i", GOOD), POLICY)
    assert verdict.action == "wait"
    assert "7 scored answers" in verdict.reason and verdict.numbers["canary.answers"] == 7


def test_a_significant_metric_drop_rolls_back_and_says_the_numbers() -> None:
    verdict = judge(window("c", [0.1, 0.2, 0.0, 0.15, 0.1, 0.05, 0.2, 0.1]), window("i", GOOD), POLICY)
    assert verdict.action == "rollback"
    assert "token_f1 fell from 0.85 to 0.11" in verdict.reason and "8 canary and 40 incumbent (i) answers" in verdict.reason
    assert verdict.numbers["token_f1.p"] < 0.05 and verdict.numbers["token_f1.drop"] == pytest.approx(0.74, abs=0.01)


def test_a_drop_within_max_drop_is_not_a_rollback() -> None:
    slightly_worse = [v - 0.05 for v in GOOD[:10]]
    verdict = judge(window("c", slightly_worse), window("i", GOOD), POLICY)
    assert verdict.action == "wait"  # significant perhaps, but smaller than max_drop; not yet min_samples
    assert verdict.numbers["token_f1.drop"] == pytest.approx(0.05, abs=0.01)


def test_a_large_but_noisy_drop_is_not_significant() -> None:
    noisy = [1.0, 0.0, 1.0, 0.0, 0.9, 0.0, 1.0, 0.0]  # mean 0.49, huge spread over 8 answers
    incumbent = window("i", [1.0, 0.0, 1.0, 0.1, 1.0, 0.2, 1.0, 0.9])  # mean 0.65
    verdict = judge(window("c", noisy), incumbent, POLICY)
    assert verdict.numbers["token_f1.drop"] > POLICY.max_drop and verdict.numbers["token_f1.p"] > POLICY.alpha
    assert verdict.action == "wait"


def test_more_down_votes_roll_back() -> None:
    verdict = judge(window("c", GOOD[:12], downvotes=8), window("i", GOOD, downvotes=4), POLICY)
    assert verdict.action == "rollback"
    assert "downvote share rose from 10% to 67% (8 of 12 canary answers" in verdict.reason


def test_more_errors_roll_back() -> None:
    verdict = judge(window("c", GOOD[:10], errors=5), window("i", GOOD), POLICY)
    assert verdict.action == "rollback" and "error share rose from 0% to 50%" in verdict.reason
    assert verdict.numbers["error.p"] < 0.05


def test_no_drop_after_min_samples_promotes() -> None:
    verdict = judge(window("c", GOOD[:20], downvotes=1), window("i", GOOD, downvotes=2), POLICY)
    assert verdict.action == "promote"
    assert verdict.reason.startswith("promoted: no significant drop in token_f1, down-votes, errors over 20 canary")
    assert "token_f1 0.86 vs 0.85" in verdict.reason


def test_no_drop_before_min_samples_waits() -> None:
    assert judge(window("c", GOOD[:12]), window("i", GOOD), POLICY).action == "wait"


def test_a_metric_without_scores_cannot_roll_back_and_is_named_on_promotion() -> None:
    canary = VersionWindow.of("c", [{"latency_ms": 1.0}] * 25)
    verdict = judge(canary, window("i", GOOD), POLICY)
    assert verdict.action == "promote" and "not compared for lack of scores: token_f1" in verdict.reason


def test_numbers_are_finite_floats() -> None:
    verdict = judge(window("c", [0.5] * 10), window("i", [0.5] * 10), POLICY)
    assert all(isinstance(v, int | float) and v == v for v in verdict.numbers.values())
    assert verdict.numbers["token_f1.p"] == 1.0  # identical constant samples: no drop


def test_welch_and_proportion_tests() -> None:
    assert welch_less_p(0.2, 0.1, 10, 0.8, 0.1, 10) < 1e-6
    assert welch_less_p(0.8, 0.1, 10, 0.2, 0.1, 10) > 0.99
    assert welch_less_p(0.0, 0.0, 10, 1.0, 0.0, 10) == 0.0
    assert proportion_greater_p(9, 10, 1, 10) < 0.001
    assert proportion_greater_p(0, 10, 0, 10) == 1.0


def test_a_canary_that_fails_every_request_is_rolled_back_even_with_no_incumbent_answer() -> None:
    """The canary took all the traffic of the period (or the incumbent had none): its error share is held against
    max_error_increase alone, and tasks that failed on it count as errors."""
    verdict = judge(VersionWindow.of("c", [], failed_tasks=8), VersionWindow.of("i", []), POLICY)
    assert verdict.action == "rollback", verdict
    assert "error share rose from 0% to 100% (8 of 8 canary answers" in verdict.reason
    assert verdict.numbers["error.p"] < POLICY.alpha


def test_a_few_errors_with_no_incumbent_answer_are_not_significant() -> None:
    verdict = judge(VersionWindow.of("c", [{"token_f1": 1.0}] * 7, failed_tasks=1), VersionWindow.of("i", []), POLICY)
    assert verdict.action == "wait", verdict


def taught_and_untaught(taught: list[float], untaught: list[float], incumbent_taught: list[float], incumbent_untaught: list[float]):
    canary = {"taught": window("c", taught), "untaught": window("c", untaught)}
    incumbent = {"taught": window("i", incumbent_taught), "untaught": window("i", incumbent_untaught)}
    whole = (window("c", taught + untaught), window("i", incumbent_taught + incumbent_untaught))
    return whole, {name: (canary[name], incumbent[name]) for name in canary}


def test_a_gain_on_taught_questions_does_not_hide_a_loss_on_the_rest() -> None:
    """The learning benchmark's case: facts 0 -> 1, the other questions 0.85 -> 0.3. One mean over both
    rises, so the whole window alone promotes; the untaught group's drop rolls back."""
    (canary, incumbent), groups = taught_and_untaught([1.0] * 10, [0.3, 0.25, 0.35, 0.3] * 3,
                                                      [0.0] * 10, GOOD[:12])
    assert judge(canary, incumbent, POLICY).action == "promote"
    verdict = judge(canary, incumbent, POLICY, groups)
    assert verdict.action == "rollback"
    assert "on untaught questions, token_f1 fell from 0.86 to 0.30" in verdict.reason
    assert verdict.numbers["untaught.token_f1.p"] < verdict.numbers["alpha"] == pytest.approx(POLICY.alpha / 3)
    assert "taught.token_f1.p" in verdict.numbers and "on taught" not in verdict.reason


def test_a_group_with_too_few_canary_answers_is_not_judged_on_its_own() -> None:
    (canary, incumbent), groups = taught_and_untaught([1.0] * 40, [0.0] * 3, [0.0] * 20, GOOD[:12])
    verdict = judge(canary, incumbent, POLICY, groups)
    assert "untaught.token_f1.p" not in verdict.numbers and verdict.numbers["alpha"] == pytest.approx(POLICY.alpha / 2)
    assert verdict.action == "promote" and "nor on taught questions (40 canary answers)" in verdict.reason


def test_a_canary_good_in_both_groups_is_promoted() -> None:
    (canary, incumbent), groups = taught_and_untaught([1.0] * 10, GOOD[:12], [0.0] * 10, GOOD[:12])
    verdict = judge(canary, incumbent, POLICY, groups)
    assert verdict.action == "promote" and "nor on taught questions" in verdict.reason and "nor on untaught questions" in verdict.reason


def test_promotion_waits_for_a_group_with_too_few_answers_to_judge_but_not_for_ever() -> None:
    (canary, incumbent), groups = taught_and_untaught([1.0] * 18, [0.9] * 3, [0.0] * 18, GOOD[:12])
    waiting = judge(canary, incumbent, POLICY, groups)
    assert waiting.action == "wait" and "on untaught questions to judge them too" in waiting.reason
    (canary, incumbent), groups = taught_and_untaught([1.0] * 37, [0.9] * 3, [0.0] * 18, GOOD[:12])
    verdict = judge(canary, incumbent, POLICY, groups)
    assert verdict.action == "promote" and "too few answers to judge alone: untaught questions" in verdict.reason


def test_a_group_that_holds_every_answer_is_not_tested_twice() -> None:
    """All canary traffic on taught questions (the poison benchmark): one family, alpha unchanged."""
    canary, incumbent = window("c", [0.1] * 10), window("i", GOOD[:12])
    verdict = judge(canary, incumbent, POLICY, {"taught": (canary, incumbent), "untaught": (window("c", []), window("i", []))})
    assert verdict.action == "rollback" and verdict.numbers["alpha"] == POLICY.alpha and "on taught" not in verdict.reason
