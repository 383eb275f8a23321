"""Sentence BLEU (sacrebleu) between an answer and its reference, as an HF `evaluate` metric.

Why not the Hub's `sacrebleu`/`bleu`: they report corpus BLEU on 0-100 and are fetched from the
Hub; online evaluation scores one answer at a time against one reference or user correction, and
every other ragloop score is in [0, 1]. Sentence BLEU uses sacrebleu's effective order (n-gram
orders longer than the sentence are not counted), so a correct one-word answer is not scored 0.
`evaluate` copies this single file, so it must import nothing from ragloop.
"""

import datasets
import evaluate
from sacrebleu.metrics import BLEU

_DESCRIPTION = """\
Mean sentence-level BLEU (sacrebleu, 13a tokenisation, exponential smoothing, effective order)
of each prediction against its single reference, divided by 100 so it lies in [0, 1].
"""

_CITATION = """\
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    url = "https://aclanthology.org/W18-6319",
    pages = "186--191",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated answers.
    references: list of reference answers, one per prediction.
Returns:
    bleu: mean sentence BLEU over the pairs, in [0, 1].
Examples:
    >>> bleu = evaluate.load("evaluation/metrics/bleu")
    >>> bleu.compute(predictions=["Paris"], references=["Paris"])
    {'bleu': 1.0}
"""

_BLEU = BLEU(effective_order=True)


def sentence_bleu(prediction: str, reference: str) -> float:
    return min(1.0, _BLEU.sentence_score(prediction, [reference]).score / 100)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    """Mean sentence BLEU of predictions against references, in [0, 1]."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
            reference_urls=["https://aclanthology.org/W18-6319"],
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        if not predictions:
            raise ValueError("bleu needs at least one prediction/reference pair; got none")
        scores = [sentence_bleu(p, r) for p, r in zip(predictions, references)]
        return {"bleu": sum(scores) / len(scores)}
