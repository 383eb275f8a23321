"""evaluation.qa: SQuAD-style scoring of answers and cited documents over a BEIR folder with answers.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.qa import QAReport, evaluate_qa, load_qa
from tests.support import require_path

SQUAD_MINI = Path(__file__).resolve().parents[3] / "shared" / "data" / "squad-mini"

QUESTIONS = {
    "q1": ("When did the oil crisis begin?", ["October 1973", "1973"], "oil"),
    "q2": ("Who proclaimed the embargo?", ["OAPEC"], "oil"),
    "q3": ("How long is the Ostra river?", ["612 kilometres"], "river"),
    "q4": ("What is the capital of Zorblax?", ["Quenvale"], "zorblax"),
}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    (tmp_path / "qrels").mkdir()
    docs = {"oil": "The 1973 oil crisis began in October 1973.", "river": "The Ostra river is 612 kilometres long.",
            "zorblax": "Quenvale is the capital of Zorblax."}
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in docs.items()))
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": v[0]}) + "\n" for q, v in QUESTIONS.items())
                                           + json.dumps({"_id": "unanswered", "text": "No answers for me"}) + "\n")
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps({"_id": q, "answers": v[1]}) + "\n" for q, v in QUESTIONS.items()))
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{v[2]}\t1\n" for q, v in QUESTIONS.items()))
    return tmp_path


def answers(table: dict[str, tuple[str, list[str]]]):
    by_question = {QUESTIONS[q][0]: reply for q, reply in table.items()}
    return lambda question: by_question[question]


def test_perfect_answers_and_citations_score_one_everywhere(dataset):
    report = evaluate_qa(dataset, answer_fn=answers({q: (v[1][0], [v[2]]) for q, v in QUESTIONS.items()}))
    assert report == QAReport(exact_match=1.0, f1=1.0, contains=1.0, hit_at_5=1.0, questions=4)


def test_the_json_has_exactly_the_documented_keys(dataset):
    report = evaluate_qa(dataset, answer_fn=answers({q: ("", []) for q in QUESTIONS}))
    assert list(json.loads(report.model_dump_json())) == ["exact_match", "f1", "contains", "hit@5", "questions"]


def test_exact_match_normalises_case_punctuation_and_articles_and_takes_the_best_gold(dataset):
    report = evaluate_qa(dataset, answer_fn=answers({"q1": ("1973!", []), "q2": ("the oapec", []),
                                                    "q3": ("612 Kilometres.", []), "q4": ("Quenvale City", [])}))
    assert report.exact_match == 0.75


def test_f1_gives_partial_credit_for_shared_tokens(dataset):
    report = evaluate_qa(dataset, answer_fn=answers({"q1": ("It began in October 1973", []), "q2": ("nobody", []),
                                                    "q3": ("nobody", []), "q4": ("nobody", [])}))
    # best gold for q1 is "October 1973": 2 shared of 5 predicted and 2 gold tokens → P=0.4, R=1 → F1=4/7
    assert report.f1 == pytest.approx((4 / 7) / 4, abs=1e-4)


def test_contains_credits_a_sentence_that_holds_the_gold_answer_as_whole_words(dataset):
    report = evaluate_qa(dataset, answer_fn=answers({"q1": ("It began in October 1973 [1].", []), "q2": ("OAPECX did", []),
                                                    "q3": ("About 612 kilometres.", []), "q4": ("I don't know.", [])}))
    assert (report.contains, report.exact_match) == (0.5, 0.0)


def test_hit_at_5_counts_a_gold_document_among_the_first_five_distinct_citations(dataset):
    late = ["a", "a", "b", "c", "d", "oil"]  # "oil" is the fifth distinct document
    too_late = ["a", "b", "c", "d", "e", "oil"]
    report = evaluate_qa(dataset, answer_fn=answers({"q1": ("", late), "q2": ("", too_late), "q3": ("", ["river"]), "q4": ("", [])}))
    assert report.hit_at_5 == 0.5


def test_limit_asks_only_the_first_questions_in_file_order(dataset):
    asked: list[str] = []
    report = evaluate_qa(dataset, answer_fn=lambda q: (asked.append(q), ("", []))[1], limit=2)
    assert report.questions == 2 and asked == [QUESTIONS["q1"][0], QUESTIONS["q2"][0]]


def test_questions_without_answers_are_not_asked(dataset):
    assert "unanswered" not in load_qa(dataset).questions


def test_a_folder_without_answers_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"answers\.jsonl"):
        evaluate_qa(tmp_path, answer_fn=lambda q: ("", []))


def test_the_shared_squad_mini_dataset_loads():
    """The shared data folder lives beside the repository: skipped where it is absent, failed in CI."""
    data = load_qa(require_path(SQUAD_MINI, "the shared squad-mini dataset"))
    assert len(data.questions) == 1381 and all(data.qrels[q] for q in list(data.questions)[:10])
