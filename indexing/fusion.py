"""Fuse ranked lists from different retrievers (BM25, dense) into one ranking.

Two methods, because they fail differently: reciprocal rank fusion needs no score
calibration at all (only ranks), while convex fusion keeps how *much* better one hit scored
than the next, which usually wins when both retrievers are decent (Bruch et al., "An
Analysis of Fusion Functions for Hybrid Retrieval", 2023). Both identify a hit by its chunk
id and break score ties by first appearance, so results are deterministic.

    >>> fused = convex_fusion(bm25_hits, dense_hits, alpha=0.5, limit=10)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

from indexing.types import Chunk, SearchHit


def reciprocal_rank_fusion(rankings: Sequence[list[SearchHit]], *, k: int = 60, limit: int) -> list[SearchHit]:
    """Score each chunk by the sum over rankings of ``1 / (k + rank)`` (rank from 1)."""
    if k < 0:
        raise ValueError(f"k={k} must be >= 0 (60 is the usual choice)")
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    for ranking in rankings:
        for rank, hit in enumerate(_dedupe(ranking), start=1):
            chunks.setdefault(hit.chunk.id, hit.chunk)
            scores[hit.chunk.id] = scores.get(hit.chunk.id, 0.0) + 1.0 / (k + rank)
    return _top(scores, chunks, limit)


def convex_fusion(bm25: list[SearchHit], dense: list[SearchHit], *, alpha: float, limit: int) -> list[SearchHit]:
    """Score each chunk by ``alpha * dense + (1 - alpha) * bm25`` after min-max normalising
    each list to [0, 1]; a chunk missing from a list gets 0 from it. ``alpha=1`` is dense
    only, ``alpha=0`` BM25 only."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be within [0, 1] (weight of the dense scores)")
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    for weight, ranking in ((1.0 - alpha, bm25), (alpha, dense)):
        for chunk_id, (chunk, normalised) in _min_max(_dedupe(ranking)).items():
            chunks.setdefault(chunk_id, chunk)
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight * normalised
    return _top(scores, chunks, limit)


def _dedupe(ranking: list[SearchHit]) -> list[SearchHit]:
    seen: set[str] = set()
    out: list[SearchHit] = []
    for hit in ranking:
        if hit.chunk.id not in seen:
            seen.add(hit.chunk.id)
            out.append(hit)
    return out


def _min_max(ranking: list[SearchHit]) -> dict[str, tuple[Chunk, float]]:
    if not ranking:
        return {}
    low = min(h.score for h in ranking)
    high = max(h.score for h in ranking)
    span = high - low
    # A single hit, or all tied, carries no spread: treat them all as the list's best.
    return {h.chunk.id: (h.chunk, (h.score - low) / span if span > 0 else 1.0) for h in ranking}


def _top(scores: dict[str, float], chunks: dict[str, Chunk], limit: int) -> list[SearchHit]:
    order = {chunk_id: i for i, chunk_id in enumerate(chunks)}
    ranked = sorted(scores, key=lambda cid: (-scores[cid], order[cid]))
    return [SearchHit(chunk=chunks[cid], score=scores[cid]) for cid in ranked[:max(limit, 0)]]
