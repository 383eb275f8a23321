"""Citation validity, answer relevance (with the real MiniLM embedder) and sampled perplexity."""

from __future__ import annotations

import pytest

from evaluation.citation_validity import citation_validity, supports
from evaluation.perplexity import PerplexityScorer, sampled
from evaluation.relevance import answer_relevance

PASSAGES = ["The Ostra river is 612 km long and flows into the Baltic.", "Vessa is a town famous for blue glass."]


def test_every_marker_supported_is_valid() -> None:
    assert citation_validity("The Ostra is 612 km long [1]. Vessa makes blue glass [2].", PASSAGES) == 1.0


def test_a_marker_on_the_wrong_passage_or_out_of_range_is_invalid() -> None:
    assert citation_validity("The Ostra is 612 km long [2]. Vessa makes blue glass [2].", PASSAGES) == 0.5
    assert citation_validity("The Ostra is 612 km long [7].", PASSAGES) == 0.0


def test_grouped_markers_each_count_and_no_markers_is_not_measurable() -> None:
    assert citation_validity("The Ostra is 612 km long [1, 2].", PASSAGES) == 0.5
    assert citation_validity("The Ostra is 612 km long.", PASSAGES) is None


def test_support_needs_half_of_the_sentence_content_tokens() -> None:
    assert supports("Ostra river long [1]", PASSAGES[0])
    assert not supports("Ostra carries salmon trout eels [1]", PASSAGES[0])  # 1 of 5 content tokens
    assert not supports("[1]", PASSAGES[0])  # a bare marker claims nothing


@pytest.fixture(scope="module")
def embedder():
    from models.embedder import TextEmbedder

    return TextEmbedder()


def test_answer_relevance_prefers_an_on_topic_answer(embedder) -> None:
    question = "What is the capital of France?"
    on_topic = answer_relevance(embedder, question, "Paris is the capital of France.")
    off_topic = answer_relevance(embedder, question, "Bake the bread for forty minutes.")
    assert on_topic is not None and off_topic is not None and 0 <= off_topic < on_topic <= 1
    assert on_topic > 0.6 and off_topic < 0.3
    assert answer_relevance(embedder, question, "  ") is None


def test_sampling_is_stable_per_task_and_near_its_rate() -> None:
    assert sampled("task-1", 0.3) == sampled("task-1", 0.3)
    assert not sampled("task-1", 0.0) and sampled("task-1", 1.0)
    share = sum(sampled(f"task-{n}", 0.25) for n in range(2000)) / 2000
    assert 0.2 < share < 0.3


@pytest.mark.slow
def test_perplexity_is_lower_for_a_fitting_answer() -> None:
    from models.fetch import ensure_smollm2

    scorer = PerplexityScorer(ensure_smollm2(), max_tokens=32)
    fitting = scorer.score("What is the capital of France?", "The capital of France is Paris.")
    garbled = scorer.score("What is the capital of France?", "Glass eels whistle beneath Tuesday's purple arithmetic.")
    assert fitting is not None and garbled is not None and 1 <= fitting < garbled
    assert scorer.score("Anything?", " ") is None
