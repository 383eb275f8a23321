"""SQuAD-style token F1 and exact match, as an HF `evaluate` metric.

Why not the Hub's `squad`: it wants SQuAD-shaped dicts (ids, answer lists) and reports 0-100;
our answers are free text with a single reference or user correction, and every other ragloop
score is in [0, 1]. The normalisation is SQuAD v1.1's so numbers stay comparable with the
literature. `evaluate` copies this single file, so it must import nothing from ragloop.
"""

import re
import string
from collections import Counter

import datasets
import evaluate

_DESCRIPTION = """\
Token-level F1 and exact match between a prediction and a reference after SQuAD
normalisation: lowercase, drop punctuation, drop the articles a/an/the, collapse whitespace.
F1 is the harmonic mean of precision and recall over the multiset of shared tokens.
Both scores are in [0, 1]; two texts that normalise to nothing count as an exact match.
"""

_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
    title = "{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text",
    author = "Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy",
    booktitle = "Proceedings of EMNLP 2016",
    year = "2016",
    url = "https://aclanthology.org/D16-1264",
    pages = "2383--2392",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated answers.
    references: list of reference answers, one per prediction.
Returns:
    token_f1: mean token F1 over the pairs, in [0, 1].
    exact_match: fraction of pairs equal after normalisation, in [0, 1].
Examples:
    >>> token_f1 = evaluate.load("evaluation/metrics/token_f1")
    >>> token_f1.compute(predictions=["The Cat!"], references=["cat"])
    {'token_f1': 1.0, 'exact_match': 1.0}
"""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation, so casing and filler words do not count as errors."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def pair_f1(prediction: str, reference: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    if not pred_tokens or not ref_tokens:
        # SQuAD v2 convention: empty vs empty is correct, empty vs anything else is wrong.
        return float(pred_tokens == ref_tokens)
    shared = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(pred_tokens)
    recall = shared / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TokenF1(evaluate.Metric):
    """Mean SQuAD token F1 and exact match of predictions against references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
            reference_urls=["https://aclanthology.org/D16-1264"],
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        if not predictions:
            raise ValueError("token_f1 needs at least one prediction/reference pair; got none")
        f1 = [pair_f1(p, r) for p, r in zip(predictions, references)]
        em = [float(normalize_answer(p) == normalize_answer(r)) for p, r in zip(predictions, references)]
        return {"token_f1": sum(f1) / len(f1), "exact_match": sum(em) / len(em)}
