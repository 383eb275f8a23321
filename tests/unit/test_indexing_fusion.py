"""Fusion of BM25 and dense rankings: reciprocal rank fusion and convex (min-max) fusion."""

from __future__ import annotations

import pytest

from indexing.fusion import convex_fusion, reciprocal_rank_fusion
from indexing.types import Chunk, SearchHit


def hit(chunk_id: str, score: float) -> SearchHit:
    return SearchHit(chunk=Chunk(id=chunk_id, document_id=f"doc-{chunk_id}", tenant="t", ordinal=0, text=chunk_id),
                     score=score)


def ids(hits: list[SearchHit]) -> list[str]:
    return [h.chunk.id for h in hits]


def test_rrf_scores_are_sums_of_reciprocal_ranks():
    fused = reciprocal_rank_fusion([[hit("a", 9), hit("b", 5)], [hit("b", 0.9), hit("c", 0.1)]], k=60, limit=10)
    scores = {h.chunk.id: h.score for h in fused}
    assert scores == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62})
    assert ids(fused) == ["b", "a", "c"]


def test_rrf_ignores_raw_scores():
    one = reciprocal_rank_fusion([[hit("a", 1000), hit("b", 1)]], limit=2)
    two = reciprocal_rank_fusion([[hit("a", 0.2), hit("b", 0.1)]], limit=2)
    assert [h.score for h in one] == [h.score for h in two]


def test_rrf_counts_a_duplicate_within_one_list_once():
    fused = reciprocal_rank_fusion([[hit("a", 3), hit("a", 2), hit("b", 1)]], k=0, limit=5)
    assert {h.chunk.id: h.score for h in fused} == pytest.approx({"a": 1.0, "b": 0.5})


def test_rrf_respects_limit_and_empty_inputs():
    assert reciprocal_rank_fusion([], limit=3) == []
    assert reciprocal_rank_fusion([[], []], limit=3) == []
    assert ids(reciprocal_rank_fusion([[hit(x, 1) for x in "abcdef"]], limit=3)) == ["a", "b", "c"]


def test_convex_alpha_one_is_dense_order_and_zero_is_bm25_order():
    bm25 = [hit("a", 12.0), hit("b", 7.0), hit("c", 1.0)]
    dense = [hit("c", 0.9), hit("b", 0.5), hit("a", 0.4)]
    assert ids(convex_fusion(bm25, dense, alpha=1.0, limit=3)) == ["c", "b", "a"]
    assert ids(convex_fusion(bm25, dense, alpha=0.0, limit=3)) == ["a", "b", "c"]


def test_convex_normalises_each_list_to_unit_range():
    bm25 = [hit("a", 20.0), hit("b", 15.0), hit("c", 10.0)]
    dense = [hit("b", 0.8), hit("c", 0.7), hit("a", 0.6)]
    scores = {h.chunk.id: h.score for h in convex_fusion(bm25, dense, alpha=0.5, limit=3)}
    assert scores == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.25})


def test_convex_gives_nothing_for_a_list_a_chunk_is_missing_from():
    scores = {h.chunk.id: h.score for h in convex_fusion([hit("a", 3.0), hit("b", 1.0)], [hit("c", 0.5)],
                                                         alpha=0.25, limit=5)}
    assert scores == pytest.approx({"a": 0.75, "b": 0.0, "c": 0.25})


def test_convex_with_one_list_empty_keeps_the_other_order():
    assert ids(convex_fusion([], [hit("x", 0.3), hit("y", 0.2)], alpha=0.5, limit=5)) == ["x", "y"]


def test_ties_break_by_first_appearance():
    fused = convex_fusion([hit("a", 1.0), hit("b", 1.0)], [hit("c", 1.0)], alpha=0.5, limit=3)
    assert ids(fused) == ["a", "b", "c"]


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_convex_rejects_alpha_outside_unit_range(alpha):
    with pytest.raises(ValueError, match="alpha"):
        convex_fusion([], [], alpha=alpha, limit=1)


def test_convex_max_normalisation_divides_each_list_by_its_best_score():
    bm25 = [hit("a", 10.0), hit("b", 5.0)]
    dense = [hit("b", 0.8), hit("a", 0.4)]
    scores = {h.chunk.id: h.score for h in convex_fusion(bm25, dense, alpha=0.5, limit=2, normalisation="max")}
    assert scores == pytest.approx({"a": 0.5 * 1.0 + 0.5 * 0.5, "b": 0.5 * 0.5 + 0.5 * 1.0})


def test_convex_zscore_normalisation_centres_each_list():
    bm25 = [hit("a", 3.0), hit("b", 1.0)]
    dense = [hit("a", 0.9), hit("b", 0.1)]
    scores = {h.chunk.id: h.score for h in convex_fusion(bm25, dense, alpha=0.5, limit=2, normalisation="zscore")}
    assert scores == pytest.approx({"a": 1.0, "b": -1.0})


def test_without_minmax_a_missing_chunk_gets_the_lists_lowest_score():
    bm25 = [hit("a", 10.0), hit("b", 2.0)]
    dense = [hit("c", 0.5)]
    scores = {h.chunk.id: h.score for h in convex_fusion(bm25, dense, alpha=0.5, limit=3, normalisation="max")}
    assert scores == pytest.approx({"a": 0.5 + 0.5, "b": 0.1 + 0.5, "c": 0.1 + 0.5})


def test_convex_rejects_an_unknown_normalisation():
    with pytest.raises(ValueError, match="normalisation"):
        convex_fusion([], [], alpha=0.5, limit=1, normalisation="softmax")  # type: ignore[arg-type]
