"""trainers.gate: a candidate adapter is promoted only if it beats the incumbent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.llm.base import ChatMessage, Generation, GenerationParams
from trainers.dataset import TrainingExample
from trainers.gate import gate_candidate, score_engine


class ScriptedEngine:
    """An LLMEngine whose answers per adapter are fixed, to test the gate's arithmetic."""

    name = "scripted"

    def __init__(self, answers: dict[str | None, dict[str, str]]) -> None:
        self.answers = answers

    def generate(self, messages, params: GenerationParams | None = None, *, adapter=None) -> Generation:
        text = self.answers[adapter][messages[-1].content]
        return Generation(text=text, prompt_tokens=1, completion_tokens=1, adapter=adapter, finish_reason="stop")

    def stream(self, messages, params=None, *, adapter=None) -> Iterator[str]:
        yield self.generate(messages, params, adapter=adapter).text

    def load_adapter(self, name: str, path: Path) -> None: ...

    def adapters(self) -> list[str]:
        return [a for a in self.answers if a]


def example(question: str, target: str) -> TrainingExample:
    return TrainingExample(messages=[ChatMessage(role="user", content=question)], target=target)


EXAMPLES = [example("q1", "Quenvale is the capital."), example("q2", "seventeen moons")]


def test_score_is_mean_f1_over_examples():
    engine = ScriptedEngine({None: {"q1": "Quenvale is the capital.", "q2": "no idea"}})
    assert score_engine(engine, EXAMPLES, None) == pytest.approx(0.5)


def test_better_candidate_is_promoted_over_the_base_model():
    engine = ScriptedEngine(
        {None: {"q1": "Paris", "q2": "two"}, "v2": {"q1": "Quenvale is the capital", "q2": "seventeen moons"}}
    )
    report = gate_candidate(engine, EXAMPLES, candidate="v2", incumbent=None)
    assert report.promoted
    assert report.candidate_score == 1.0 and report.incumbent_score == 0.0
    assert [r.candidate_answer for r in report.per_example] == ["Quenvale is the capital", "seventeen moons"]


def test_tie_is_not_promoted():
    same = {"q1": "Quenvale", "q2": "seventeen"}
    report = gate_candidate(ScriptedEngine({"v1": same, "v2": same}), EXAMPLES, "v2", "v1")
    assert not report.promoted


def test_gain_below_min_gain_is_not_promoted():
    engine = ScriptedEngine(
        {"v1": {"q1": "Quenvale", "q2": "none"}, "v2": {"q1": "Quenvale is the capital", "q2": "none"}}
    )
    report = gate_candidate(engine, EXAMPLES, "v2", "v1", min_gain=0.5)
    assert report.candidate_score > report.incumbent_score
    assert not report.promoted


def test_empty_held_out_set_is_an_error():
    with pytest.raises(ValueError, match="held-out"):
        gate_candidate(ScriptedEngine({}), [], "v2", None)


LIKED = [example("g1", "The observatory opened in 1987."), example("g2", "It bakes rye sourdough.")]
LEARNED = {"q1": "Quenvale is the capital", "q2": "seventeen moons"}
KEPT = {"g1": "The observatory opened in 1987.", "g2": "It bakes rye sourdough."}


def test_a_candidate_that_forgets_up_voted_answers_is_not_promoted():
    engine = ScriptedEngine({None: {"q1": "Paris", "q2": "two", **KEPT},
                             "v2": {**LEARNED, "g1": "The observatory opened in 1987.", "g2": "Quenvale is the capital"}})
    report = gate_candidate(engine, EXAMPLES, "v2", None, guard=LIKED, max_guard_drop=0.05)
    assert report.candidate_score == 1.0 and report.incumbent_score == 0.0  # it did learn the corrections
    assert report.guard_incumbent_score == 1.0 and report.guard_candidate_score == pytest.approx(0.5)
    assert not report.promoted and "regressed on 2 up-voted answers" in report.reason
    assert [r.candidate_answer for r in report.guard_per_example][1] == "Quenvale is the capital"


def test_a_drop_within_the_allowance_on_up_voted_answers_is_promoted():
    engine = ScriptedEngine({None: {"q1": "Paris", "q2": "two", **KEPT},
                             "v2": {**LEARNED, "g1": "The observatory opened in 1987", "g2": "It bakes rye sourdough bread."}})
    report = gate_candidate(engine, EXAMPLES, "v2", None, guard=LIKED, max_guard_drop=0.1)
    assert 0.9 < report.guard_candidate_score < 1.0 and report.promoted


def test_without_a_gain_the_guard_is_not_even_asked():
    same = {"q1": "Quenvale", "q2": "seventeen", **KEPT}
    report = gate_candidate(ScriptedEngine({"v1": same, "v2": same}), EXAMPLES, "v2", "v1", guard=LIKED)
    assert not report.promoted and report.guard_per_example == [] and "no gain" in report.reason


def test_without_up_votes_there_is_no_guard():
    engine = ScriptedEngine({None: {"q1": "Paris", "q2": "two"}, "v2": LEARNED})
    report = gate_candidate(engine, EXAMPLES, "v2", None)
    assert report.promoted and report.guard_candidate_score is None and report.guard_per_example == []
