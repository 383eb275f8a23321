"""SciFact (train) retrieval quality of the embedded backend: nDCG@10 for bm25, dense, hybrid.

Reads ../shared/data/scifact (BEIR layout), ingests the corpus through the real
``IngestPipeline`` (Chunker → TextEmbedder → EmbeddedBackend), retrieves chunks with
``HybridRetriever`` and scores documents (a document ranks by its best chunk). Prints each
mode's nDCG@10 and Recall@100 and its ratio against BM25 measured in the same run, then
optionally sweeps the convex-fusion alpha and RRF. Each query retrieves ``--depth`` chunks, so
hybrid fuses the top ``max(candidates, depth)`` of each retriever. The dense ms/query
includes embedding the query on CPU.

    .venv/bin/python benchmarks/retrieval_scifact.py                    # defaults
    .venv/bin/python benchmarks/retrieval_scifact.py --sweep            # + alpha / RRF sweep

Embeddings are cached under $RAGLOOP_MODEL_CACHE/../benchmarks (by text hash) so a rerun that
changes only BM25 or fusion settings takes seconds; pass --no-cache to embed afresh.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexing.backends.analyzer import EnglishAnalyzer  # noqa: E402
from indexing.backends.embedded import EmbeddedBackend  # noqa: E402
from indexing.chunking import Chunker  # noqa: E402
from indexing.pipeline import IngestPipeline  # noqa: E402
from indexing.retriever import HybridRetriever  # noqa: E402
from indexing.types import SearchHit, SourceDocument  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def load_scifact(folder: Path) -> tuple[list[SourceDocument], dict[str, str], dict[str, dict[str, int]]]:
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [SourceDocument(id=str(r["_id"]), title=r.get("title", ""), text=r["text"])
                for r in map(json.loads, f)]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(folder / "qrels" / "train.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels[qid][did] = int(score)
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = {str(r["_id"]): r["text"] for r in map(json.loads, f) if str(r["_id"]) in qrels}
    return docs, queries, dict(qrels)


def ndcg_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: Sequence[str], relevant: dict[str, int], k: int = 100) -> float:
    hits = sum(1 for d in ranked[:k] if relevant.get(d, 0) > 0)
    return hits / max(1, sum(1 for g in relevant.values() if g > 0))


def documents(hits: list[SearchHit]) -> list[str]:
    """Chunk hits → document ranking, each document at the rank of its best chunk."""
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.chunk.document_id, None)
    return list(seen)


class CachedEmbedder:
    """Wraps an embedder with an on-disk cache keyed by (model, text) hash, for fast reruns."""

    def __init__(self, embedder, cache_file: Path | None) -> None:
        self.inner = embedder
        self.dimension = embedder.dimension
        self.cache_file = cache_file
        self.cache: dict[str, np.ndarray] = {}
        if cache_file and cache_file.exists():
            with np.load(cache_file) as data:
                self.cache = dict(zip(data["keys"].tolist(), data["vectors"]))

    def _key(self, text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            fresh = self.inner.embed([texts[i] for i in missing])
            for i, vector in zip(missing, fresh):
                self.cache[keys[i]] = vector
        return np.stack([self.cache[key] for key in keys]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def save(self) -> None:
        if self.cache_file:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            keys = np.array(list(self.cache), dtype="U40")
            tmp = self.cache_file.with_suffix(".tmp.npz")
            np.savez(tmp, keys=keys, vectors=np.stack(list(self.cache.values())))
            os.replace(tmp, self.cache_file)


def evaluate(retriever: HybridRetriever, queries: dict[str, str], qrels: dict[str, dict[str, int]],
             mode: str, depth: int) -> tuple[float, float]:
    ndcgs, recalls = [], []
    for qid, text in queries.items():
        ranked = documents(retriever.retrieve(text, k=depth, mode=mode))  # type: ignore[arg-type]
        ndcgs.append(ndcg_at_k(ranked, qrels[qid]))
        recalls.append(recall_at_k(ranked, qrels[qid]))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--overlap-tokens", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=None, help="convex fusion weight of dense (default: retriever's)")
    parser.add_argument("--candidates", type=int, default=None, help="hits per retriever before fusion")
    parser.add_argument("--stemmer", default="english", help="PyStemmer algorithm, or 'none'")
    parser.add_argument("--no-stopwords", action="store_true")
    parser.add_argument("--min-token-length", type=int, default=1)
    parser.add_argument("--k1", type=float, default=1.2)
    parser.add_argument("--b", type=float, default=0.75)
    parser.add_argument("--depth", type=int, default=100, help="chunks retrieved per query (document recall depth)")
    parser.add_argument("--sweep", action="store_true", help="also sweep alpha and RRF")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()

    from models.embedder import TextEmbedder

    docs, queries, qrels = load_scifact(args.data)
    print(f"SciFact train: {len(docs)} documents, {len(queries)} queries with qrels")
    cache_root = Path(os.environ.get("RAGLOOP_MODEL_CACHE", Path.home() / ".cache" / "ragloop" / "models"))
    embedder = CachedEmbedder(TextEmbedder(), None if args.no_cache else
                              cache_root.parent / "benchmarks" / "scifact-minilm-vectors.npz")
    analyzer = EnglishAnalyzer(stemmer=None if args.stemmer == "none" else args.stemmer,
                               stopwords=not args.no_stopwords, min_token_length=args.min_token_length)
    chunker = Chunker(max_tokens=args.max_tokens, overlap_tokens=args.overlap_tokens)
    settings = {"chunker": chunker.to_dict(), "analyzer": analyzer.to_dict(), "k1": args.k1, "b": args.b}
    print("settings:", json.dumps(settings))

    with tempfile.TemporaryDirectory() as home:
        backend = EmbeddedBackend(Path(home), dimension=embedder.dimension, analyzer=analyzer, k1=args.k1, b=args.b)
        started = time.perf_counter()
        reports = IngestPipeline(chunker, embedder, backend, batch_size=128).ingest_many(docs)
        embedder.save()
        print(f"ingested {sum(r.chunks for r in reports)} chunks in {time.perf_counter() - started:.1f} s")
        options = {k: v for k, v in (("alpha", args.alpha), ("candidates", args.candidates)) if v is not None}
        retriever = HybridRetriever(embedder, backend, **options)
        print(f"retriever: {json.dumps(retriever.to_dict())}")

        results = {}
        for mode in ("bm25", "dense", "hybrid"):
            started = time.perf_counter()
            results[mode] = evaluate(retriever, queries, qrels, mode, args.depth)
            elapsed = (time.perf_counter() - started) / len(queries) * 1000
            print(f"{mode:>6}: nDCG@10 {results[mode][0]:.4f}  Recall@100 {results[mode][1]:.4f}  "
                  f"(x{results[mode][0] / results['bm25'][0]:.3f} vs bm25, {elapsed:.1f} ms/query)")
        if args.sweep:
            for alpha in (0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8):
                retriever.alpha, retriever.fusion = alpha, "convex"
                ndcg, recall = evaluate(retriever, queries, qrels, "hybrid", args.depth)
                print(f"convex alpha={alpha:.2f}: nDCG@10 {ndcg:.4f}  Recall@100 {recall:.4f}")
            retriever.fusion = "rrf"
            ndcg, recall = evaluate(retriever, queries, qrels, "hybrid", args.depth)
            print(f"rrf k={retriever.rrf_k}: nDCG@10 {ndcg:.4f}  Recall@100 {recall:.4f}")
        embedder.save()  # query vectors too, for fast reruns
        backend.close()


if __name__ == "__main__":
    main()
