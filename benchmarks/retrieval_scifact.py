"""Tuning sweep on SciFact train: chunk size, fusion method, normalisation, alpha, RRF k, depth.

How defaults were chosen (train split only; the test split is never looked at). The corpus is
chunked and indexed once per chunker setting (vectors from the embedding cache, see
embedding_cache.py; a new chunk size embeds ~10-30 minutes on 2 busy cores), each judged query's
BM25 and dense chunk lists are fetched once at ``--depth``, and every fusion variant is scored
offline by the real ``indexing.fusion`` functions on the first ``candidates`` hits of each list.
Documents rank by their best chunk; metrics come from ``evaluation.retrieval``.

    .venv/bin/python benchmarks/retrieval_scifact.py                          # current chunker defaults
    .venv/bin/python benchmarks/retrieval_scifact.py --chunking 200:32 128:32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedding_cache import CachedEmbedder, cache_file  # noqa: E402

from evaluation.retrieval import documents_of, load_beir, score_rankings  # noqa: E402
from indexing.backends.embedded import EmbeddedBackend  # noqa: E402
from indexing.chunking import Chunker  # noqa: E402
from indexing.fusion import convex_fusion, reciprocal_rank_fusion  # noqa: E402
from indexing.pipeline import IngestPipeline  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def sweep(data, chunker: Chunker, embedder: CachedEmbedder, depth: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        backend = EmbeddedBackend(Path(home), dimension=embedder.dimension)
        started = time.perf_counter()
        chunks = sum(r.chunks for r in IngestPipeline(chunker, embedder, backend, batch_size=128).ingest_many(data.documents))
        embedder.save()
        print(f"\n## chunker {chunker.to_dict()}: {chunks} chunks, indexed in {time.perf_counter() - started:.0f} s", flush=True)
        lists = {qid: (backend.search_bm25(tenant="default", text=text, k=depth),
                       backend.search_dense(tenant="default", vector=embedder.embed_query(text), k=depth))
                 for qid, text in data.queries.items()}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--chunking", nargs="+", default=None, help="max_tokens:overlap_tokens pairs (default: Chunker())")
    parser.add_argument("--depth", type=int, default=300, help="chunks fetched per retriever and query")
    args = parser.parse_args()

    from models.embedder import TextEmbedder

    data = load_beir(args.data, split="train")
    print(f"SciFact train: {len(data.documents)} documents, {len(data.queries)} judged queries")
    embedder = CachedEmbedder(TextEmbedder(), cache_file("scifact"))
    chunkers = [Chunker(*map(int, spec.split(":"))) for spec in args.chunking] if args.chunking else [Chunker()]
    for chunker in chunkers:
        sweep(data, chunker, embedder, args.depth)


if __name__ == "__main__":
    main()
