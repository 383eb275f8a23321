"""Answer a query with the best chunks of one tenant: BM25, dense, or both fused.

Hybrid is the default because the two retrievers miss different things: BM25 finds rare
exact terms (gene names, error codes) that embeddings blur, embeddings find paraphrases that
share no words. Each retriever contributes ``candidates`` hits and the fused list is cut to
``k``.

The fusion is convex: each list's scores are divided by its best score (``normalisation="max"``)
and mixed with weight ``alpha`` on the dense side. Dividing by the best score, unlike min-max,
keeps the top of the fused list nearly independent of how many candidates were fetched, because
no list's floor moves with the depth. RRF stays available (``fusion="rrf"``) for backends whose
scores are not comparable. The defaults were chosen on SciFact train with
benchmarks/retrieval_scifact.py, where convex max-norm fusion beat BM25, dense, min-max, z-score
and RRF; pseudo-relevance feedback, RM3, a third list, other BM25 parameters, per-query alpha,
score transforms and document-level aggregation were measured and left out because none moved
the result beyond noise. The figures are in benchmarks/README.md ("Tuning sweep", "Levers
beyond the fusion settings").

    >>> retriever = HybridRetriever(TextEmbedder(), backend)                 # doctest: +SKIP
    >>> retriever.retrieve("does aspirin prevent stroke?", tenant="acme", k=5)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from indexing.backends.base import SearchBackend
from indexing.fusion import NORMALISATIONS, Normalisation, convex_fusion, reciprocal_rank_fusion
from indexing.types import Embedder, SearchHit, SearchMode

FusionMethod = Literal["rrf", "convex"]
# Chosen on SciFact train (benchmarks/retrieval_scifact.py); see the module docstring.
ALPHA, CANDIDATES = 0.70, 100
NORMALISATION: Normalisation = "max"
_MODES = ("bm25", "dense", "hybrid")


class HybridRetriever:
    """Retrieval over a ``SearchBackend`` with a query embedder; settings are data (``to_dict``)."""

    def __init__(self, embedder: Embedder, backend: SearchBackend, *, mode: SearchMode = "hybrid",
                 fusion: FusionMethod = "convex", alpha: float = ALPHA, candidates: int = CANDIDATES,
                 rrf_k: int = 60, normalisation: Normalisation = NORMALISATION) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}; expected one of {_MODES}")
        if fusion not in ("rrf", "convex"):
            raise ValueError(f"fusion={fusion!r}; expected 'rrf' or 'convex'")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha={alpha} must be within [0, 1] (weight of dense scores)")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation={normalisation!r}; expected one of {NORMALISATIONS}")
        if candidates < 1:
            raise ValueError(f"candidates={candidates} must be at least 1")
        self.embedder = embedder
        self.backend = backend
        self.mode: SearchMode = mode
        self.fusion: FusionMethod = fusion
        self.alpha = alpha
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.normalisation: Normalisation = normalisation

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "fusion": self.fusion, "alpha": self.alpha,
                "candidates": self.candidates, "rrf_k": self.rrf_k,
                "normalisation": self.normalisation}

    def retrieve(self, query: str, *, tenant: str = "default", k: int = 5, mode: SearchMode | None = None,
                 principals: Sequence[str] | None = None) -> list[SearchHit]:
        """Top-``k`` chunks of ``tenant`` that ``principals`` may read (see ``SearchBackend`` for access lists)."""
        mode = mode or self.mode
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}; expected one of {_MODES}")
        if k <= 0 or not query.strip():
            return []
        if mode == "bm25":
            return self.backend.search_bm25(tenant=tenant, text=query, k=k, principals=principals)
        vector = self.embedder.embed_query(query)
        if mode == "dense":
            return self.backend.search_dense(tenant=tenant, vector=vector, k=k, principals=principals)
        depth = max(self.candidates, k)
        bm25, dense = self.backend.search_hybrid(tenant=tenant, text=query, vector=vector, k=depth, principals=principals)
        if self.fusion == "rrf":
            return reciprocal_rank_fusion([bm25, dense], k=self.rrf_k, limit=k)
        return convex_fusion(bm25, dense, alpha=self.alpha, limit=k, normalisation=self.normalisation)
