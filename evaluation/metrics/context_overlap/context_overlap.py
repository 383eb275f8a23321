"""Answer-context overlap, a cheap groundedness proxy, as an HF `evaluate` metric.

Why: most production answers have no reference, yet we still want a signal that the model is
answering from what retrieval gave it rather than from its weights. The fraction of the answer's
content words that appear in the retrieved contexts is crude (it cannot see negation or wrong
combinations of right words) but it is fast, deterministic and falls sharply when a model starts
to hallucinate. `evaluate` copies this single file, so it must import nothing from ragloop, and
the stopword list lives here because NLTK's corpus download is not available offline.
"""

import re
import string

import datasets
import evaluate

_DESCRIPTION = """\
Fraction of the answer's content tokens that occur anywhere in its retrieved contexts.
Both sides are lowercased and stripped of punctuation; English stopwords are removed from the
answer. Repeated answer tokens count each time. An answer with no content tokens scores 0.0:
an empty answer should not look perfectly grounded.
"""

_CITATION = """\
@misc{ragloop-context-overlap,
    title = "Answer-context token overlap as a groundedness proxy",
    author = "ragloop contributors",
    year = "2025",
    note = "Lexical relative of the faithfulness metrics in RAGAS (Es et al., 2023, arXiv:2309.15217)",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated answers.
    references: list of context lists, the passages retrieved for each answer.
Returns:
    context_overlap: mean overlap over the answers, in [0, 1].
Examples:
    >>> overlap = evaluate.load("evaluation/metrics/context_overlap")
    >>> overlap.compute(predictions=["Paris is the capital"], references=[["Paris, capital of France"]])
    {'context_overlap': 1.0}
"""

_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves also may might must shall s t""".split()
)
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def tokens(text: str) -> list[str]:
    return _PUNCTUATION.sub(" ", text.lower()).split()


def content_tokens(text: str) -> list[str]:
    return [t for t in tokens(text) if t not in _STOPWORDS]


def overlap(answer: str, contexts: list[str]) -> float:
    answer_tokens = content_tokens(answer)
    if not answer_tokens:
        return 0.0
    context_vocabulary = {t for context in contexts for t in tokens(context)}
    return sum(t in context_vocabulary for t in answer_tokens) / len(answer_tokens)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ContextOverlap(evaluate.Metric):
    """Mean fraction of answer content tokens found in the answer's retrieved contexts."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("string"),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2309.15217"],
        )

    def _compute(self, predictions: list[str], references: list[list[str]]) -> dict[str, float]:
        if not predictions:
            raise ValueError("context_overlap needs at least one answer with its contexts; got none")
        scores = [overlap(answer, contexts) for answer, contexts in zip(predictions, references)]
        return {"context_overlap": sum(scores) / len(scores)}
