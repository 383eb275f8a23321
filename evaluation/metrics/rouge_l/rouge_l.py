"""ROUGE-L F-measure with Porter stemming, as an HF `evaluate` metric.

Why our own module instead of the Hub's `rouge`: the Hub is unreachable in our deployments, and
we want exactly one number (L, F-measure, stemmed) rather than four ROUGE variants per call.
`evaluate` copies this single file into its module cache, so it must import nothing from ragloop.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = """\
ROUGE-L F-measure: the longest common subsequence of prediction and reference tokens,
balanced between precision (LCS / prediction length) and recall (LCS / reference length).
Tokens are lowercased, non-alphanumeric characters are dropped and words are Porter-stemmed,
so "answers" matches "answer". Note: the rouge-score tokenizer keeps only [a-z0-9], so text in
non-Latin scripts scores 0.
"""

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/W04-1013",
    pages = "74--81",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated answers.
    references: list of reference answers, one per prediction.
Returns:
    rouge_l: mean ROUGE-L F-measure over the pairs, in [0, 1].
Examples:
    >>> rouge_l = evaluate.load("evaluation/metrics/rouge_l")
    >>> rouge_l.compute(predictions=["the cat sat"], references=["the cat sat"])
    {'rouge_l': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RougeL(evaluate.Metric):
    """Mean stemmed ROUGE-L F-measure of predictions against references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=["https://aclanthology.org/W04-1013"],
        )

    def _download_and_prepare(self, dl_manager: object) -> None:
        # Built once per loaded metric; the stemmer and regexes are reused across calls.
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        if not predictions:
            raise ValueError("rouge_l needs at least one prediction/reference pair; got none")
        scores = [
            self._scorer.score(target=ref, prediction=pred)["rougeL"].fmeasure
            for pred, ref in zip(predictions, references)
        ]
        return {"rouge_l": sum(scores) / len(scores)}
