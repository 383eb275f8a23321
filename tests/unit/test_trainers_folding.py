"""Corrections are refused with a reason when unusable and folded when they repeat one question."""

from __future__ import annotations

from trainers.folding import Correction, fold, normalise, refusal


def c(id: str, question: str, text: str) -> Correction:
    return Correction(id=id, question=question, text=text)


def test_repeated_and_near_duplicate_corrections_of_one_question_fold_into_the_latest() -> None:
    kept, dropped = fold([c("a", "What was Q3 revenue?", "Q3 revenue: $4.2M"),
                          c("b", "what was q3 revenue", "Q3 revenue: $4.2M."),
                          c("x", "Who runs Zorblax?", "Quenvale runs Zorblax."),
                          c("d", "What was Q3  revenue ?", "Q3 revenue: $4.2 M")], similarity=0.9, max_chars=100)
    assert [k.id for k in kept] == ["x", "d"]
    assert {d.id: d.reason for d in dropped} == {"a": "folded into d: the same question corrected alike",
                                                 "b": "folded into d: the same question corrected alike"}


def test_different_corrections_of_one_question_and_alike_corrections_of_different_questions_stay() -> None:
    kept, dropped = fold([c("a", "Capital of Zorblax?", "Quenvale."), c("b", "Capital of Zorblax?", "It is Marrow Point, since 2019."),
                          c("c", "Capital of Plinth?", "Quenvale.")], similarity=0.9, max_chars=100)
    assert ([k.id for k in kept], dropped) == (["a", "b", "c"], [])


def test_empty_and_overlong_corrections_are_refused_with_the_reason() -> None:
    kept, dropped = fold([c("e", "q1", "   "), c("l", "q2", "x" * 11), c("ok", "q3", "fine")], similarity=0.9, max_chars=10)
    assert [k.id for k in kept] == ["ok"]
    assert [(d.id, d.reason.split(":")[0]) for d in dropped] == [("e", "empty correction"), ("l", "correction of 11 characters is longer than the limit of 10")]
    assert refusal("fine", 10) is None


def test_normalise_ignores_case_accents_punctuation_and_spacing() -> None:
    assert normalise("  Où est  Zürich?! ") == normalise("ou est zurich") == "ou est zurich"
