"""Fuse ranked lists from different retrievers (BM25, dense) into one ranking.

Two methods, because they fail differently: reciprocal rank fusion needs no score
calibration at all (only ranks), while convex fusion keeps how *much* better one hit scored
than the next, which usually wins when both retrievers are decent (Bruch et al., "An
Analysis of Fusion Functions for Hybrid Retrieval", 2023). Both identify a hit by its chunk
id and break score ties by first appearance, so results are deterministic.

Convex fusion needs each list's scores on a common scale. ``minmax`` maps a list to [0, 1]
(its spread then depends on how deep the list is); ``max`` divides by the list's best score
(BM25 and cosine both have a natural zero, so this keeps "how good in absolute terms");
``zscore`` centres and scales by the list's spread. A chunk missing from one list gets that
list's lowest normalised score, it ranked below everything the list holds (0 for ``minmax``).

    >>> fused = convex_fusion(bm25_hits, dense_hits, alpha=0.5, limit=10)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from indexing.types import Chunk, SearchHit

Normalisation = Literal["minmax", "max", "zscore"]
NORMALISATIONS: tuple[str, ...] = ("minmax", "max", "zscore")


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


def convex_fusion(bm25: list[SearchHit], dense: list[SearchHit], *, alpha: float, limit: int,
                  normalisation: Normalisation = "minmax") -> list[SearchHit]:
    """Score each chunk by ``alpha * dense + (1 - alpha) * bm25`` after normalising each list
    (see the module docstring); a chunk missing from a list gets that list's lowest normalised
    score (0 with ``minmax``). ``alpha=1`` is dense only, ``alpha=0`` BM25 only."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} must be within [0, 1] (weight of the dense scores)")
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation={normalisation!r}; expected one of {NORMALISATIONS}")
    weighted = [(1.0 - alpha, _dedupe(bm25)), (alpha, _dedupe(dense))]
    chunks: dict[str, Chunk] = {}
    for _, hits in weighted:
        for hit in hits:
            chunks.setdefault(hit.chunk.id, hit.chunk)
    # Every chunk starts at each list's floor; a list then lifts the chunks it holds above it.
    normalised = [(weight, hits, _normalise(hits, normalisation)) for weight, hits in weighted]
    floors = [0.0 if normalisation == "minmax" or not values else min(values) for _, _, values in normalised]
    base = sum(weight * floor for (weight, _, _), floor in zip(normalised, floors))
    scores = dict.fromkeys(chunks, base)
    for (weight, hits, values), floor in zip(normalised, floors):
        for hit, value in zip(hits, values):
            scores[hit.chunk.id] += weight * (value - floor)
    return _top(scores, chunks, limit)


def _dedupe(ranking: list[SearchHit]) -> list[SearchHit]:
    seen: set[str] = set()
    out: list[SearchHit] = []
    for hit in ranking:
        if hit.chunk.id not in seen:
            seen.add(hit.chunk.id)
            out.append(hit)
    return out


def _normalise(ranking: list[SearchHit], how: str) -> list[float]:
    """The ranking's scores on the common scale, in ranking order."""
    if not ranking:
        return []
    raw = np.fromiter((h.score for h in ranking), dtype=np.float64, count=len(ranking))
    if how == "max":
        top = raw.max()
        values = raw / top if top > 0 else np.ones_like(raw)
    elif how == "zscore":
        spread = raw.std()
        values = (raw - raw.mean()) / spread if spread > 0 else np.zeros_like(raw)
    else:
        low, high = raw.min(), raw.max()
        # A single hit, or all tied, carries no spread: treat them all as the list's best.
        values = (raw - low) / (high - low) if high > low else np.ones_like(raw)
    return values.tolist()


def _top(scores: dict[str, float], chunks: dict[str, Chunk], limit: int) -> list[SearchHit]:
    """The ``limit`` best, score descending, ties in first-appearance order (dicts keep it)."""
    if limit <= 0 or not scores:
        return []
    ids = list(scores)
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(ids))
    order = np.lexsort((np.arange(len(ids)), -values))[:limit]
    return [SearchHit(chunk=chunks[ids[i]], score=float(values[i])) for i in order.tolist()]
