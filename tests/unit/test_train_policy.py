"""When the learning policy trains a tenant's adapter: each trigger, and what holds one back."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings
from trainers.policy import TrainPolicy
from trainers.train_policy import PolicyInputs, decide, load_policy

POLICY = TrainPolicy(min_corrections=5, downvote_rate=0.5, window=10, min_window=4, metric_drop=0.15, min_interval_s=60,
                     min_corrections_for_trigger=1)


def inputs(**changes: object) -> PolicyInputs:
    return PolicyInputs.model_validate({"tenant": "acme", "serving_version": "smollm2@base", "corrections": 0, **changes})


def test_enough_corrections_since_the_last_run_train() -> None:
    assert not decide(POLICY, inputs(corrections=4)).train
    decision = decide(POLICY, inputs(corrections=5))
    assert decision.train and "5 corrections" in decision.reason and decision.inputs.corrections == 5


def test_a_down_vote_rate_over_the_window_trains_once_enough_ratings_and_a_correction_are_there() -> None:
    assert decide(POLICY, inputs(corrections=1, ratings=6, downvotes=3)).train
    assert not decide(POLICY, inputs(corrections=1, ratings=6, downvotes=2)).train  # 0.33 < 0.5
    assert not decide(POLICY, inputs(corrections=1, ratings=3, downvotes=3)).train  # fewer than min_window ratings
    held = decide(POLICY, inputs(corrections=0, ratings=6, downvotes=6))
    assert not held.train and "min_corrections_for_trigger" in held.reason  # nothing to learn from


def test_a_windowed_metric_drop_of_the_serving_version_trains() -> None:
    assert decide(POLICY, inputs(corrections=1, metric_baseline=0.8, metric_recent=0.6)).train
    assert not decide(POLICY, inputs(corrections=1, metric_baseline=0.8, metric_recent=0.7)).train
    assert not decide(POLICY.model_copy(update={"metric_drop": None}), inputs(corrections=1, metric_baseline=0.8, metric_recent=0.1)).train


def test_no_run_starts_within_the_minimum_interval_or_while_one_is_running() -> None:
    assert not decide(POLICY, inputs(corrections=50, seconds_since_last_run=30)).train
    assert decide(POLICY, inputs(corrections=50, seconds_since_last_run=61)).train
    busy = decide(POLICY, inputs(corrections=50, running=True))
    assert not busy.train and "running" in busy.reason


def test_the_public_min_corrections_variable_overrides_the_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Precedence: RAGLOOP_FEEDBACK_MIN_CORRECTIONS > the policy YAML > the built-in default."""
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("train:\n  min_corrections: 7\n")
    monkeypatch.delenv("RAGLOOP_FEEDBACK_MIN_CORRECTIONS", raising=False)
    monkeypatch.setenv("RAGLOOP_TRAINING_POLICY", str(policy_file))
    assert load_policy(Settings(home=tmp_path)).train.min_corrections == 7
    monkeypatch.setenv("RAGLOOP_FEEDBACK_MIN_CORRECTIONS", "3")
    assert load_policy(Settings(home=tmp_path)).train.min_corrections == 3
