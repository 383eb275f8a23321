"""The embedded BM25 analyzer on Chinese, Japanese and Korean text."""

from __future__ import annotations

from indexing.backends.analyzer import EnglishAnalyzer


def test_english_text_is_analysed_as_before():
    assert EnglishAnalyzer()("The mice's tumours are growing") == ["mice", "tumour", "grow"]


def test_cjk_runs_become_unigrams_and_overlapping_bigrams():
    assert EnglishAnalyzer()("東京都") == ["東", "東京", "京", "京都", "都"]


def test_mixed_text_keeps_english_analysis_around_cjk_runs():
    assert EnglishAnalyzer()("Running GPU並列 servers") == ["run", "gpu", "並", "並列", "列", "server"]


def test_full_width_latin_is_folded_like_ascii():
    assert EnglishAnalyzer()("ＧＰＵの設定") == EnglishAnalyzer()("GPUの設定")


def test_korean_words_are_split_into_bigrams():
    assert "서울" in EnglishAnalyzer()("서울특별시는 수도이다")
