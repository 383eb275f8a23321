"""Tuning sweep on SciFact train: chunk size, fusion method, normalisation, alpha, RRF k, depth,
and dense pseudo-relevance feedback.

How defaults were chosen (train split only; the test split is never looked at). The corpus is
chunked and indexed once per chunker setting (vectors from the embedding cache, see
embedding_cache.py; a new chunk size embeds ~10-30 minutes on 2 busy cores), each judged query's
BM25 and dense chunk lists are fetched once at ``--depth``, and every fusion variant is scored
offline by the real ``indexing.fusion`` functions on the first ``candidates`` hits of each list.
Documents rank by their best chunk; metrics come from ``evaluation.retrieval``.

Dense pseudo-relevance feedback (Rocchio on the query vector, ``--prf``) is swept too, because
it is the usual cheap lever for MiniLM-class encoders: ``q' = normalise(q + beta * mean of the
top-m feedback chunks' vectors)``, then a second dense search, fused with BM25 as usual. The
feedback chunks come from the dense list or from the fused hybrid list. It did not help here
(see benchmarks/README.md), so ``HybridRetriever`` has no such option; the rows stay so that the
claim can be re-checked on new chunking or a new encoder.

    .venv/bin/python benchmarks/retrieval_scifact.py                          # current chunker defaults
    .venv/bin/python benchmarks/retrieval_scifact.py --chunking 200:32 128:32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedding_cache import CachedEmbedder, cache_file

from evaluation.retrieval import documents_of, load_beir, score_rankings
from indexing.backends.embedded import EmbeddedBackend
from indexing.chunking import Chunker
from indexing.fusion import convex_fusion, reciprocal_rank_fusion
from indexing.pipeline import IngestPipeline
from indexing.retriever import ALPHA, NORMALISATION
from indexing.types import SearchHit

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


# (feedback source, feedback chunks m, beta) for the dense PRF rows; a small grid of a wider
# offline one (m 1-10, beta 0.5-2), which peaked at these.
PRF_GRID = [(source, m, beta) for source in ("dense", "hybrid") for m in (3, 10) for beta in (0.5, 1.0)]


def rocchio(query: np.ndarray, feedback: np.ndarray, beta: float) -> np.ndarray:
    """The query vector moved towards the mean of the feedback chunks' vectors, unit length
    again so that cosine scores stay on the scale the fusion normalisation expects."""
    moved = query + beta * feedback.mean(axis=0)
    return moved / np.linalg.norm(moved)


def prf_lists(backend: EmbeddedBackend, embedder: CachedEmbedder, query: np.ndarray, bm25: list[SearchHit],
              dense: list[SearchHit], depth: int) -> dict[tuple[str, int, float], list[SearchHit]]:
    """Second-pass dense lists for every PRF_GRID setting; chunk vectors come from the cache."""
    hybrid = convex_fusion(bm25, dense, alpha=ALPHA, limit=max(m for _, m, _ in PRF_GRID), normalisation=NORMALISATION)
    out = {}
    for source, m, beta in PRF_GRID:
        first = (dense if source == "dense" else hybrid)[:m]
        if not first:
            out[(source, m, beta)] = dense
            continue
        feedback = embedder.embed([h.chunk.embedding_text() for h in first])
        out[(source, m, beta)] = backend.search_dense(tenant="default", vector=rocchio(query, feedback, beta), k=depth)
    return out


def sweep(data, chunker: Chunker, embedder: CachedEmbedder, depth: int, prf: bool = True) -> None:
    with tempfile.TemporaryDirectory() as home:
        backend = EmbeddedBackend(Path(home), dimension=embedder.dimension)
        started = time.perf_counter()
        chunks = sum(r.chunks for r in IngestPipeline(chunker, embedder, backend, batch_size=128).ingest_many(data.documents))
        embedder.save()
        print(f"\n## chunker {chunker.to_dict()}: {chunks} chunks, indexed in {time.perf_counter() - started:.0f} s", flush=True)
        lists, second = {}, {}
        for qid, text in data.queries.items():
            query = embedder.embed_query(text)
            bm25 = backend.search_bm25(tenant="default", text=text, k=depth)
            dense = backend.search_dense(tenant="default", vector=query, k=depth)
            lists[qid] = (bm25, dense)
            if prf:
                second[qid] = prf_lists(backend, embedder, query, bm25, dense, depth)
        embedder.save()
        backend.close()

    def show(name: str, fuse) -> float:
        metrics = score_rankings({q: documents_of(fuse(b, d))[:100] for q, (b, d) in lists.items()}, data.qrels)
        print(f"| {name} | {metrics['ndcg@10']:.4f} | {metrics['recall@100']:.4f} | {metrics['mrr@10']:.4f} |", flush=True)
        return metrics["ndcg@10"]

    print("| variant | nDCG@10 | recall@100 | MRR@10 |\n|---|---|---|---|")
    show("bm25", lambda b, d: b)
    show("dense", lambda b, d: d)
    for normalisation in ("minmax", "max", "zscore"):
        for candidates in (50, 100, 300):
            for alpha in (0.35, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75):
                if candidates > depth:
                    continue
                show(f"convex {normalisation} candidates={candidates} alpha={alpha:.2f}",
                     lambda b, d: convex_fusion(b[:candidates], d[:candidates], alpha=alpha, limit=depth,
                                                normalisation=normalisation))
    for candidates in (50, 300):
        for k in (5, 20, 60):
            show(f"rrf candidates={candidates} k={k}",
                 lambda b, d: reciprocal_rank_fusion([b[:candidates], d[:candidates]], k=k, limit=depth))
    if not prf:
        return

    def show_prf(name: str, fuse) -> None:
        metrics = score_rankings({q: documents_of(fuse(q))[:100] for q in lists}, data.qrels)
        print(f"| {name} | {metrics['ndcg@10']:.4f} | {metrics['recall@100']:.4f} | {metrics['mrr@10']:.4f} |", flush=True)

    for setting in PRF_GRID:
        label = "dense PRF from {} m={} beta={}".format(*setting)
        show_prf(label, lambda q: second[q][setting])
        for alpha in (0.6, 0.7):
            show_prf(f"{label} + bm25, convex {NORMALISATION} alpha={alpha:.2f}",
                     lambda q: convex_fusion(lists[q][0], second[q][setting], alpha=alpha, limit=depth,
                                             normalisation=NORMALISATION))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--chunking", nargs="+", default=None, help="max_tokens:overlap_tokens pairs (default: Chunker())")
    parser.add_argument("--depth", type=int, default=300, help="chunks fetched per retriever and query")
    parser.add_argument("--no-prf", action="store_true", help="skip the dense pseudo-relevance feedback rows")
    args = parser.parse_args()

    from models.embedder import TextEmbedder

    data = load_beir(args.data, split="train")
    print(f"SciFact train: {len(data.documents)} documents, {len(data.queries)} judged queries")
    embedder = CachedEmbedder(TextEmbedder(), cache_file("scifact"))
    chunkers = [Chunker(*map(int, spec.split(":"))) for spec in args.chunking] if args.chunking else [Chunker()]
    for chunker in chunkers:
        sweep(data, chunker, embedder, args.depth, prf=not args.no_prf)


if __name__ == "__main__":
    main()
