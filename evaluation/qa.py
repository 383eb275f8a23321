"""Score question answering end to end: exact match, token F1, answer-contains-gold, retrieval hit@5.

The dataset is a BEIR folder with `answers.jsonl` (`_id`, `answers`: accepted answer strings), like
`../shared/data/squad-mini`; its `qrels/<split>.tsv` names the gold document(s) of each question.
The caller supplies `answer_fn(question) -> (answer, cited document ids)`, so the same scoring
serves the CLI (which asks through the chat path) and tests (a plain function).

Per question, as SQuAD v1.1 does, exact match and F1 take the best of the accepted answers (same
normalisation: lowercase, no punctuation, no articles). `contains` is 1 when some accepted answer
appears, as whole words, inside the normalised answer: a fairer score for a chat model that
answers in a sentence ("It began in October 1973 [1].") where exact match is 0. `hit@5` is 1 when
a gold document is among the first five distinct cited documents.

    >>> report = evaluate_qa(Path("../shared/data/squad-mini"), answer_fn=ask, limit=50)   # doctest: +SKIP
    >>> report.model_dump_json()                                                           # doctest: +SKIP
    '{"exact_match":0.02,"f1":0.21,"contains":0.36,"hit@5":0.9,"questions":50}'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from evaluation.metrics.token_f1.token_f1 import normalize_answer, pair_f1
from evaluation.retrieval import Qrels, read_qrels

AnswerFn = Callable[[str], tuple[str, list[str]]]
HIT_DEPTH = 5


class QAReport(BaseModel):
    """Means over the questions asked, each in [0, 1]. JSON keys: `exact_match`, `f1`, `contains`,
    `hit@5`, `questions` (`model_dump_json` writes the aliases)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    exact_match: float
    f1: float
    contains: float
    hit_at_5: float = Field(serialization_alias="hit@5", validation_alias="hit@5")
    questions: int


class QuestionScores(BaseModel):
    exact_match: float
    f1: float
    contains: float
    hit_at_5: float


@dataclass(frozen=True)
class QADataset:
    """Questions that have accepted answers, in `queries.jsonl` order, with their gold documents."""

    questions: dict[str, str]
    answers: dict[str, list[str]]
    qrels: Qrels


def load_qa(folder: Path, *, split: str = "test") -> QADataset:
    """Read `queries.jsonl`, `answers.jsonl` and `qrels/<split>.tsv` of a BEIR folder."""
    folder = Path(folder)
    answers_file = folder / "answers.jsonl"
    if not answers_file.is_file():
        raise FileNotFoundError(f"{answers_file} does not exist; a QA dataset is a BEIR folder with answers.jsonl "
                                "lines like {\"_id\": \"q1\", \"answers\": [\"1973\"]}")
    answers = {str(r["_id"]): [str(a) for a in r["answers"]] for r in _jsonl(answers_file)}
    answers = {qid: golds for qid, golds in answers.items() if golds}
    qrels_file = folder / "qrels" / f"{split}.tsv"
    qrels = read_qrels(qrels_file) if qrels_file.is_file() else {}
    questions = {str(r["_id"]): str(r["text"]) for r in _jsonl(folder / "queries.jsonl") if str(r["_id"]) in answers}
    if not questions:
        raise ValueError(f"no query in {folder / 'queries.jsonl'} has an entry in {answers_file}")
    return QADataset(questions=questions, answers=answers, qrels=qrels)


def score_question(answer: str, golds: Sequence[str], cited_documents: Sequence[str],
                   gold_documents: set[str]) -> QuestionScores:
    """The four scores of one answer (best over the accepted answers)."""
    normalised = f" {normalize_answer(answer)} "
    exact = max(float(normalize_answer(answer) == normalize_answer(gold)) for gold in golds)
    f1 = max(pair_f1(answer, gold) for gold in golds)
    contains = max(float(bool(normalize_answer(gold)) and f" {normalize_answer(gold)} " in normalised) for gold in golds)
    top = list(dict.fromkeys(cited_documents))[:HIT_DEPTH]
    return QuestionScores(exact_match=exact, f1=f1, contains=contains, hit_at_5=float(bool(gold_documents.intersection(top))))


def evaluate_qa(dataset: Path, *, answer_fn: AnswerFn, limit: int | None = None, progress: bool = False,
                split: str = "test") -> QAReport:
    """Ask the first `limit` questions (all when None) through `answer_fn` and average the scores."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be at least 1 (or None for every question)")
    data = load_qa(dataset, split=split)
    qids = list(data.questions)[:limit]
    totals = dict.fromkeys(("exact_match", "f1", "contains", "hit_at_5"), 0.0)
    iterator: Iterable[str] = qids
    if progress:
        from tqdm import tqdm

        iterator = tqdm(qids, desc="qa", unit="question")
    for qid in iterator:
        answer, cited = answer_fn(data.questions[qid])
        gold_documents = {doc for doc, grade in data.qrels.get(qid, {}).items() if grade > 0}
        scores = score_question(answer, data.answers[qid], cited, gold_documents)
        for name, value in scores.model_dump().items():
            totals[name] += value
    n = len(qids)
    return QAReport(**{name: round(value / n, 4) for name, value in totals.items()}, questions=n)


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
