"""Retrieval quality and query throughput: ragloop (embedded, OpenSearch) vs LangChain and Haystack.

One run, same data, same chunks, same MiniLM vectors for every system (corpus vectors from the
embedding cache, see embedding_cache.py; query vectors embedded live, so queries/s includes
query embedding). Documents rank by their best chunk for every system. Prints, per dataset, a
table of nDCG@10, recall@100, MRR@10 and queries/s with ratios against the best peer.

The peers score BM25 in pure Python over every chunk (LangChain ~0.3-1 s, Haystack ~2-5 s per
SciFact query on this machine), so by default they run on a fixed random sample of queries
(``--peer-queries``, seed 13); ragloop is reported on that same sample (the rows compared
with the peers) and on all queries. ``--peer-queries 0`` runs the peers on every query.

    .venv/bin/python benchmarks/retrieval_quality.py                        # scifact + squad-mini
    .venv/bin/python benchmarks/retrieval_quality.py --datasets scifact --peer-queries 0
    .venv/bin/python benchmarks/retrieval_quality.py --datasets scifact --no-peers --opensearch '' \
        --compare-embedders torch onnx-int8     # query embedder runtimes side by side

Every system embeds its queries with the same ``TextEmbedder`` (``--embedder-backend``, default
the product default ``onnx``); ``--compare-embedders`` adds ragloop embedded dense and hybrid
rows for other runtimes, measured in the same run (row suffix ``[torch]``, ``[onnx-int8]``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedding_cache import CachedEmbedder, cache_file

from evaluation.retrieval import RECALL_DEPTH, BeirDataset, documents_of, load_beir, score_rankings
from indexing.backends.analyzer import EnglishAnalyzer
from indexing.backends.embedded import EmbeddedBackend
from indexing.chunking import Chunker
from indexing.retriever import HybridRetriever
from models.embedder import EMBEDDER_BACKENDS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPLITS = {"scifact": "train", "squad-mini": "test"}
CHUNKS_PER_QUERY = 3 * RECALL_DEPTH  # enough chunks for ~100 distinct documents


def opensearch_reachable(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def run(system: Callable[[str], list[str]], queries: dict[str, str]) -> tuple[dict[str, list[str]], float]:
    rankings: dict[str, list[str]] = {}
    started = time.perf_counter()
    for qid, text in queries.items():
        rankings[qid] = system(text)[:RECALL_DEPTH]
    return rankings, len(queries) / (time.perf_counter() - started)


def index(backend, chunks, vectors, *, threads: int) -> float:
    """Write chunks per document (as the ingest pipeline does); OpenSearch writes wait for a
    refresh, so they go through a thread pool."""
    from concurrent.futures import ThreadPoolExecutor

    by_doc: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(chunks):
        by_doc.setdefault((c.tenant, c.document_id), []).append(i)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: backend.replace_document(item[0][1], item[0][0], [chunks[i] for i in item[1]],
                                                            vectors[item[1]]), by_doc.items()))
    return time.perf_counter() - started


def benchmark(name: str, data: BeirDataset, args, live, rows: list[dict], extra_embedders: dict | None = None) -> None:
    chunker = Chunker()
    chunks = [c for d in data.documents for c in chunker.split(d)]
    cached = CachedEmbedder(live, None if args.no_cache else cache_file(name))
    started = time.perf_counter()
    vectors = cached.embed([c.embedding_text() for c in chunks])
    cached.save()
    print(f"\n== {name} ({data.split}): {len(data.documents)} documents, {len(chunks)} chunks "
          f"{json.dumps(chunker.to_dict())}, {len(data.queries)} queries; {cached.misses} chunk texts embedded "
          f"({time.perf_counter() - started:.0f} s), rest from the cache", flush=True)
    rng = random.Random(13)
    qids = list(data.queries)
    sample_ids = qids if args.peer_queries <= 0 or args.peer_queries >= len(qids) else rng.sample(qids, args.peer_queries)
    sample = {q: data.queries[q] for q in sample_ids}
    sample_qrels = {q: data.qrels[q] for q in sample_ids}

    def record(system: str, rankings, qps, peer: bool, queries: dict[str, str]) -> None:
        full = len(queries) == len(data.queries)
        on_sample = {q: rankings[q] for q in sample_ids if q in rankings}
        row = {"dataset": name, "system": system, "peer": peer, "qps": qps,
               **{f"sample_{k}": v for k, v in score_rankings(on_sample, sample_qrels).items()}}
        if full:
            row.update({f"all_{k}": v for k, v in score_rankings(rankings, data.qrels).items()})
        rows.append(row)
        all_part = f"all: nDCG@10 {row['all_ndcg@10']:.4f}" if full else "all: -"
        print(f"  {system:<34} sample nDCG@10 {row['sample_ndcg@10']:.4f}  {all_part}  {qps:7.1f} q/s", flush=True)

    backends = [("embedded", lambda home: EmbeddedBackend(Path(home), dimension=live.dimension))]
    if args.opensearch and opensearch_reachable(args.opensearch):
        from indexing.backends.opensearch import OpenSearchBackend

        prefix = f"bench-quality-{uuid.uuid4().hex[:8]}"
        backends.append(("opensearch", lambda home: OpenSearchBackend(args.opensearch, dimension=live.dimension,
                                                                       index_prefix=prefix)))
    else:
        print(f"  (OpenSearch at {args.opensearch} not reachable: ragloop/opensearch rows skipped)")
    for backend_name, make in backends:
        with tempfile.TemporaryDirectory() as home:
            backend = make(home)
            try:
                seconds = index(backend, chunks, vectors, threads=1 if backend_name == "embedded" else 32)
                print(f"  ragloop/{backend_name}: indexed in {seconds:.1f} s (vectors from the cache)", flush=True)
                retriever = HybridRetriever(live, backend)
                for mode in ("bm25", "dense", "hybrid"):
                    retriever.retrieve("warm up", k=CHUNKS_PER_QUERY, mode=mode)  # type: ignore[arg-type]

                    def system(text: str, mode=mode) -> list[str]:
                        return documents_of(retriever.retrieve(text, k=CHUNKS_PER_QUERY, mode=mode))
                    rankings, qps = run(system, data.queries)
                    record(f"ragloop {backend_name} {mode}", rankings, qps, False, data.queries)
                if backend_name == "embedded":
                    for runtime, embedder in (extra_embedders or {}).items():
                        compare_embedder(runtime, HybridRetriever(embedder, backend), data.queries, record)
            finally:
                if backend_name == "opensearch":
                    backend.drop_index()
                backend.close()

    if args.no_peers:
        return
    from peers import HaystackHybrid, LangChainHybrid

    peers = {
        "LangChain Ensemble (defaults)": lambda: LangChainHybrid(chunks, vectors, live, depth=CHUNKS_PER_QUERY),
        "LangChain Ensemble (stemmed BM25)": lambda: LangChainHybrid(chunks, vectors, live, depth=CHUNKS_PER_QUERY,
                                                                     preprocess_func=EnglishAnalyzer()),
        "Haystack RRF (defaults, BM25L)": lambda: HaystackHybrid(chunks, vectors, live, depth=CHUNKS_PER_QUERY),
    }
    for system_name, make in peers.items():
        started = time.perf_counter()
        peer = make()
        build = time.perf_counter() - started
        peer.retrieve("warm up")
        rankings, qps = run(peer.retrieve, sample)
        record(system_name, rankings, qps, True, sample)
        print(f"    (built in {build:.0f} s)", flush=True)


def compare_embedder(runtime: str, retriever: HybridRetriever, queries: dict[str, str], record) -> None:
    """Dense and hybrid rows with another query-embedder runtime on the same index."""
    for mode in ("dense", "hybrid"):
        retriever.retrieve("warm up", k=CHUNKS_PER_QUERY, mode=mode)  # type: ignore[arg-type]

        def system(text: str, mode=mode) -> list[str]:
            return documents_of(retriever.retrieve(text, k=CHUNKS_PER_QUERY, mode=mode))
        rankings, qps = run(system, queries)
        record(f"ragloop embedded {mode} [{runtime}]", rankings, qps, False, queries)


def table(rows: list[dict], sample_note: str) -> str:
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == name]
        peers = [r for r in group if r["peer"]]
        best_q = max(peers, key=lambda r: r["sample_ndcg@10"]) if peers else None
        best_qps = max(peers, key=lambda r: r["qps"]) if peers else None
        lines.append(f"\n### {name}  ({sample_note})")
        lines.append("| system | nDCG@10 | recall@100 | MRR@10 | nDCG@10 all queries | queries/s | nDCG vs best peer | "
                     "q/s vs fastest peer |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in group:
            d_ndcg = f"{r['sample_ndcg@10'] - best_q['sample_ndcg@10']:+.4f}" if best_q else "-"
            x_qps = f"x{r['qps'] / best_qps['qps']:.1f}" if best_qps else "-"
            full = f"{r['all_ndcg@10']:.4f}" if "all_ndcg@10" in r else "-"
            lines.append(f"| {r['system']} | {r['sample_ndcg@10']:.4f} | {r['sample_recall@100']:.4f} | "
                         f"{r['sample_mrr@10']:.4f} | {full} | {r['qps']:.1f} | {d_ndcg} | {x_qps} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--datasets", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    parser.add_argument("--opensearch", default="http://127.0.0.1:9200", help="'' to skip the OpenSearch rows")
    parser.add_argument("--peer-queries", type=int, default=100, help="peer query sample size; 0 = all queries")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every system (one short query "
                        "embeds fastest on one thread on a shared CPU)")
    parser.add_argument("--embedder-backend", choices=EMBEDDER_BACKENDS, default=None,
                        help="query embedder runtime of every system (default: RAGLOOP_EMBEDDER_BACKEND, i.e. onnx)")
    parser.add_argument("--compare-embedders", nargs="*", choices=EMBEDDER_BACKENDS, default=[],
                        help="also run ragloop embedded dense/hybrid with these query embedder runtimes")
    args = parser.parse_args()

    import torch

    from models.embedder import TextEmbedder

    torch.set_num_threads(args.threads)

    live = TextEmbedder(backend=args.embedder_backend)
    extra = {b: TextEmbedder(backend=b) for b in args.compare_embedders if b != live.backend}
    print(f"query embedder: {live.name} on {live.backend}, {torch.get_num_threads()} thread(s)"
          + (f"; compared: {', '.join(extra)}" if extra else ""))
    rows: list[dict] = []
    for name in args.datasets:
        benchmark(name, load_beir(args.data / name, split=SPLITS[name]), args, live, rows, extra)
    note = ("metrics on the peer query sample" if args.peer_queries > 0 else "metrics on all queries")
    print(table(rows, note + "; queries/s: ragloop over all queries, peers over the sample; query embedding included"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
