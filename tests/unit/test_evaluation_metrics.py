"""The project's `evaluate` metric modules, loaded the way production loads them."""

import evaluate
import pytest

from evaluation.metric_loader import compute, load_metric


@pytest.mark.parametrize("name", ["rouge_l", "token_f1", "context_overlap", "bleu"])
def test_each_metric_is_an_evaluate_metric_with_a_citation(name):
    metric = load_metric(name)
    assert isinstance(metric, evaluate.Metric)
    assert metric.citation.strip() and metric.description.strip()


def test_metrics_are_loaded_once_per_process():
    assert load_metric("rouge_l") is load_metric("rouge_l")


def test_unknown_metric_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="rouge_l, token_f1, context_overlap, bleu"):
        load_metric("sacrebleu")


def test_rouge_l_identical_texts_score_one():
    assert compute("rouge_l", predictions=["the cat sat"], references=["the cat sat"])["rouge_l"] == 1.0


def test_rouge_l_disjoint_texts_score_zero():
    assert compute("rouge_l", predictions=["alpha beta"], references=["gamma delta"])["rouge_l"] == 0.0


def test_rouge_l_partial_overlap_is_lcs_f_measure():
    # LCS("the quick brown fox", "the brown dog") = "the brown": P = 2/4, R = 2/3, F = 4/7
    score = compute("rouge_l", predictions=["the quick brown fox"], references=["the brown dog"])["rouge_l"]
    assert score == pytest.approx(4 / 7)


def test_rouge_l_stems_words_before_matching():
    assert compute("rouge_l", predictions=["running dogs"], references=["run dog"])["rouge_l"] == 1.0


def test_token_f1_identical_texts_score_one_and_match_exactly():
    assert compute("token_f1", predictions=["Paris"], references=["Paris"]) == {"token_f1": 1.0, "exact_match": 1.0}


def test_token_f1_disjoint_texts_score_zero():
    assert compute("token_f1", predictions=["alpha beta"], references=["gamma delta"]) == {
        "token_f1": 0.0,
        "exact_match": 0.0,
    }


def test_token_f1_partial_overlap_counts_shared_tokens_after_dropping_articles():
    # [cat, sat, on, mat] vs [cat, lay, on, rug]: 2 shared, P = R = 1/2, F1 = 1/2
    result = compute("token_f1", predictions=["The cat sat on the mat"], references=["A cat lay on a rug"])
    assert result == {"token_f1": pytest.approx(0.5), "exact_match": 0.0}


def test_token_f1_ignores_case_punctuation_and_articles():
    assert compute("token_f1", predictions=["The Cat!"], references=["cat"]) == {"token_f1": 1.0, "exact_match": 1.0}


def test_token_f1_averages_over_pairs():
    result = compute("token_f1", predictions=["cat", "dog"], references=["cat", "fish"])
    assert result == {"token_f1": 0.5, "exact_match": 0.5}


def test_context_overlap_answer_copied_from_context_scores_one():
    result = compute("context_overlap", predictions=["Paris is the capital"], references=[["Paris, capital of France"]])
    assert result["context_overlap"] == 1.0


def test_context_overlap_answer_absent_from_context_scores_zero():
    result = compute("context_overlap", predictions=["apples oranges"], references=[["cars trucks"]])
    assert result["context_overlap"] == 0.0


def test_context_overlap_is_fraction_of_content_tokens_found():
    # content tokens [eiffel, tower, berlin]; berlin is not in the context
    result = compute(
        "context_overlap",
        predictions=["The Eiffel Tower is in Berlin"],
        references=[["The Eiffel Tower stands in Paris."]],
    )
    assert result["context_overlap"] == pytest.approx(2 / 3)


def test_context_overlap_searches_all_contexts_of_an_answer():
    result = compute("context_overlap", predictions=["eiffel berlin"], references=[["eiffel tower", "berlin wall"]])
    assert result["context_overlap"] == 1.0


def test_context_overlap_of_an_answer_with_only_stopwords_is_zero():
    result = compute("context_overlap", predictions=["it is what it is"], references=[["it is what it is"]])
    assert result["context_overlap"] == 0.0


def test_bleu_identical_texts_score_one_and_disjoint_zero():
    assert compute("bleu", predictions=["Paris is the capital"], references=["Paris is the capital"]) == {"bleu": pytest.approx(1.0)}
    assert compute("bleu", predictions=["Berlin"], references=["Paris"]) == {"bleu": 0.0}


def test_bleu_is_sentence_bleu_over_100_and_counts_short_answers():
    # sacrebleu's sentence BLEU with effective order: a one-word answer is not scored 0 for lacking 4-grams.
    assert compute("bleu", predictions=["Paris"], references=["Paris"])["bleu"] == pytest.approx(1.0)
    partial = compute("bleu", predictions=["the capital is Paris"], references=["Paris is the capital"])["bleu"]
    assert partial == pytest.approx(0.3799, abs=1e-3)


def test_bleu_averages_over_pairs():
    assert compute("bleu", predictions=["Paris", "Berlin"], references=["Paris", "Paris"])["bleu"] == pytest.approx(0.5)
