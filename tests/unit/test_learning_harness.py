"""The learning-loop harness's own pieces (tests/e2e/learning.py), which the end-to-end tests and
benchmarks/learning_loop.py trust to say what is right: the fact set, the answer checks, the
simulated user's verdict, the poison it teaches, the policy YAML and the rollback measure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.learning import (
    FACTS,
    Answer,
    Question,
    contains_any,
    fact_questions,
    judge,
    measure_rollback,
    normalised,
    poison_pairs,
    policy_yaml,
    squad_sample,
)
from tests.support import require_path
from trainers.policy import LearningPolicy

SQUAD = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad-mini"


def test_twenty_distinct_invented_facts_each_taught_by_its_correction() -> None:
    assert len(FACTS) == 20
    assert len({f.question for f in FACTS}) == len({f.keyword for f in FACTS}) == 20
    for fact in FACTS:
        assert contains_any(fact.correction, [fact.keyword]), fact  # the correction teaches the keyword
        assert not contains_any(fact.question, [fact.keyword]), fact  # the question does not give it away
        others = [f.keyword for f in FACTS if f is not fact]
        assert not contains_any(fact.correction, others), fact  # one fact's answer never counts for another


@pytest.mark.parametrize(("answer", "accepted", "right"), [
    ("The capital of Zorblax is QUENVALE.", ["quenvale"], True),
    ("It opened in 1,873.", ["1873"], True),
    ("Vauntel's city", ["vauntel"], True),
    ("It is called Quenvaleton.", ["quenvale"], False),  # whole words: a longer word is not the answer
    ("I do not know.", ["quenvale"], False),
    ("about $12 a barrel", ["$12", "nearly $12"], True),
    ("The Café de Flore", ["cafe de flore"], True),
    ("anything", [""], False),
])
def test_an_answer_is_right_when_it_holds_an_accepted_answer_as_words(answer: str, accepted: list[str], right: bool) -> None:
    assert contains_any(answer, accepted) is right


def test_normalised_drops_case_accents_and_punctuation() -> None:
    assert normalised("  Hélène, 1,873.5!  ") == "helene 18735"


def test_the_simulated_user_down_votes_wrong_answers_and_up_votes_right_ones() -> None:
    question = fact_questions(FACTS[:1])[0]
    assert question.reference == FACTS[0].correction
    assert judge("Quenvale, of course.", question).rating == "up"
    assert judge("Zorblax has no capital.", question).rating == "down"


def test_poison_is_a_wrong_answer_from_another_question() -> None:
    pool = [Question(id=str(i), text=f"q{i}", accepted=(a,)) for i, a in enumerate(["1973", "1973", "Paris", "oxygen"])]
    pairs = poison_pairs(pool[:3], pool)
    assert [q.id for q, _ in pairs] == ["0", "1", "2"]
    for question, wrong in pairs:
        assert not contains_any(wrong, question.accepted), (question, wrong)  # the next question shares the answer "1973": skipped
    with pytest.raises(ValueError, match="no wrong answer"):
        poison_pairs(pool[:1], pool[:1])


def test_the_policy_yaml_is_a_valid_learning_policy_with_only_the_corrections_trigger(tmp_path: Path) -> None:
    path = policy_yaml(tmp_path / "p.yaml", min_corrections=20, canary_share=0.5, canary_min_samples=12, canary_min_samples_to_abort=6)
    policy = LearningPolicy.from_yaml(path)
    assert policy.train.min_corrections == 20 and policy.train.min_interval_s == 0
    assert policy.train.downvote_rate is None and policy.train.metric_drop is None
    assert (policy.canary.share, policy.canary.min_samples, policy.canary.min_samples_to_abort) == (0.5, 12, 6)
    with pytest.raises(ValueError):
        policy_yaml(tmp_path / "bad.yaml", min_corrections=0, canary_share=0.5, canary_min_samples=1, canary_min_samples_to_abort=1)


def _answer(version: str, right: bool, at: float) -> Answer:
    return Answer(question=Question(id="q", text="q", accepted=("a",)), task_id="t", version=version, text="", right=right, at=at)


def test_rollback_is_measured_from_the_first_damaged_canary_answer() -> None:
    answers = [_answer("base", False, 0.0), _answer("canary", True, 1.0), _answer("canary", False, 2.0), _answer("base", True, 3.0),
               _answer("canary", False, 4.5), _answer("base", True, 9.0)]
    measured = measure_rollback(answers, "canary", rolled_back_at=5.0, damaged=lambda a: not a.right)
    assert (measured.requests, measured.canary_requests, measured.seconds) == (3, 2, 3.0)
    none = measure_rollback(answers[:2], "canary", rolled_back_at=5.0, damaged=lambda a: not a.right)
    assert none.requests is None and none.seconds is None


def test_the_squad_sample_is_fixed_and_carries_answers_references_and_passages() -> None:
    data = require_path(SQUAD, "SQuAD-mini")
    first, again = squad_sample(data, 10), squad_sample(data, 10)
    assert [q.id for q in first] == [q.id for q in again] and len(first) == 10
    for question in first:
        assert question.accepted and question.reference == question.accepted[0] and question.passage
        assert any(contains_any(question.passage[1], [a]) for a in question.accepted), question  # the gold paragraph holds the answer


def _results(**teaching: object) -> dict[str, object]:
    teach = {"outcome": "active", "facts_right_after": 0.95, "squad_drop_points": 1.0, "threshold_to_all_traffic_s": 240.0} | teaching
    return {"teaching": teach}


def test_the_benchmark_checks_each_target_and_the_outcome_it_needs() -> None:
    from benchmarks.learning_report import targets

    assert all(row["met"] for row in targets(_results()))  # no poison section: its targets are not listed
    assert [row["measure"] for row in targets(_results())] == ["facts_right_after", "squad_drop_points", "threshold_to_all_traffic_s"]
    assert [row["met"] for row in targets(_results(facts_right_after=0.85, squad_drop_points=2.5))] == [False, False, True]
    assert not any(row["met"] for row in targets(_results(outcome="rolled_back")))  # a rolled-back teacher meets nothing
    poison = {"outcome": "rolled_back", "canary_requests_first_damage_to_rollback": 50, "seconds_first_damage_to_rollback": None}
    assert [row["met"] for row in targets({"poison": poison})] == [True, False]  # never measured is not met


def test_the_benchmark_plots_each_canary_as_svg(tmp_path: Path) -> None:
    from benchmarks.learning_report import plot_timeline

    timeline = [{"t": 1.0, "version": "v@lora-1", "right": False}, {"t": 2.0, "version": "v@base", "right": True}]
    plot_timeline({"poison": {"version": "v@lora-1", "outcome": "rolled_back", "timeline": timeline}}, tmp_path / "p.svg")
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml") and "<svg" in (tmp_path / "p.svg").read_text()


def test_the_benchmark_takes_a_decision_moment_from_the_audit_trail_on_the_monotonic_clock() -> None:
    import time
    from datetime import UTC, datetime, timedelta

    from benchmarks.learning_loop import decided_at

    now = datetime.now(UTC)
    trail = [{"action": "canary", "at": (now - timedelta(seconds=30)).isoformat()},
             {"action": "rollback", "at": (now - timedelta(seconds=5)).replace(tzinfo=None).isoformat()}]  # naive = UTC, as stored
    assert abs(decided_at(trail, "rollback") - (time.monotonic() - 5)) < 1  # type: ignore[operator]
    assert decided_at(trail, "promote") is None
