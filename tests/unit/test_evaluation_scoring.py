"""score_answer: which scores exist for which inputs, and their values."""

import pytest
from pydantic import ValidationError

from evaluation.scoring import AnswerScores, score_answer


def test_answer_with_reference_and_contexts_gets_every_score():
    scores = score_answer(answer="Paris", contexts=["Paris is in France"], reference="Paris", latency_ms=120.0)
    assert scores == AnswerScores(
        rouge_l=1.0, token_f1=1.0, exact_match=1.0, bleu=1.0, context_overlap=1.0, latency_ms=120.0, answer_tokens=1
    )


def test_answer_without_reference_has_no_reference_scores():
    scores = score_answer(answer="Paris", contexts=["Paris is in France"], reference=None, latency_ms=5.0)
    assert (scores.rouge_l, scores.token_f1, scores.exact_match, scores.bleu) == (None, None, None, None)
    assert scores.context_overlap == 1.0


def test_blank_reference_counts_as_no_reference():
    scores = score_answer(answer="Paris", contexts=[], reference="   ", latency_ms=5.0)
    assert scores.rouge_l is None and scores.token_f1 is None


def test_answer_without_contexts_has_no_context_overlap():
    scores = score_answer(answer="Paris", contexts=[], reference="Paris", latency_ms=5.0)
    assert scores.context_overlap is None
    assert scores.token_f1 == 1.0


def test_blank_contexts_count_as_no_contexts():
    assert score_answer(answer="Paris", contexts=["", " "], reference=None, latency_ms=5.0).context_overlap is None


def test_wrong_answer_scores_zero_not_none():
    scores = score_answer(answer="Berlin", contexts=["Paris is in France"], reference="Paris", latency_ms=5.0)
    assert (scores.rouge_l, scores.token_f1, scores.exact_match, scores.bleu, scores.context_overlap) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_answer_tokens_counts_words():
    assert score_answer(answer="The capital is Paris.", contexts=[], reference=None, latency_ms=1.0).answer_tokens == 4


def test_negative_latency_is_rejected():
    with pytest.raises(ValidationError, match="latency_ms"):
        score_answer(answer="x", contexts=[], reference=None, latency_ms=-1.0)


class _Embedder:
    """Texts embedded by which of two topics they mention: enough to tell on-topic from off-topic."""

    def embed(self, texts):
        import numpy as np

        return np.array([[float("france" in t.lower() or "paris" in t.lower()), float("pasta" in t.lower())] for t in texts])


def test_answer_relevance_and_citation_validity_are_scored_when_measurable():
    scores = score_answer(answer="Paris is the capital of France [1].", contexts=["Paris is the capital of France."],
                          reference=None, latency_ms=1.0, question="What is the capital of France?", embedder=_Embedder())
    assert (scores.answer_relevance, scores.citation_validity, scores.perplexity) == (1.0, 1.0, None)
    off_topic = score_answer(answer="Cook pasta.", contexts=[], reference=None, latency_ms=1.0, question="Capital of France?",
                             embedder=_Embedder())
    assert (off_topic.answer_relevance, off_topic.citation_validity) == (0.0, None)


def test_without_embedder_or_scorer_relevance_and_perplexity_are_not_measurable():
    scores = score_answer(answer="Paris", contexts=[], reference=None, latency_ms=1.0, question="Capital?")
    assert (scores.answer_relevance, scores.perplexity) == (None, None)
    assert score_answer(answer="Paris", contexts=[], reference=None, latency_ms=1.0, question="Capital?",
                        perplexity=lambda q, a: 3.5).perplexity == 3.5
