"""Score retrieval on any BEIR-layout folder: nDCG@10, recall@100 and MRR@10, per document.

Why per document: BEIR judges documents, while ragloop retrieves chunks. A document ranks at
the position of its best chunk (max over its chunks), which is what a reader of the result
list sees first. The metrics follow trec_eval (what BEIR reports through pytrec_eval):

- nDCG@10: graded gains ``rel / log2(rank + 1)``, normalised by the ideal ordering of *all*
  judged documents of the query (not only the retrieved ones);
- recall@100: relevant (grade > 0) documents in the top 100 over all relevant documents;
- MRR@10: ``1 / rank`` of the first relevant document within the top 10, else 0.

Queries without a relevant document in the qrels are skipped, as trec_eval does. The
implementation is a few lines each and is cross-checked against pytrec_eval in the tests.

    >>> data = load_beir(Path("../shared/data/scifact"), split="train")         # doctest: +SKIP
    >>> report = evaluate_retrieval(Path("../shared/data/scifact"), split="train",
    ...                             pipeline=pipeline, retriever=retriever)      # doctest: +SKIP
    >>> report.model_dump(by_alias=True)["ndcg@10"]                              # doctest: +SKIP
    0.74
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from indexing.pipeline import IngestPipeline
from indexing.retriever import HybridRetriever
from indexing.types import SearchHit, SearchMode, SourceDocument

Qrels = dict[str, dict[str, int]]
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)`` with stage ``"ingest"`` (documents) or ``"query"`` (queries)."""

NDCG_DEPTH, RECALL_DEPTH, MRR_DEPTH = 10, 100, 10


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR folder loaded for one qrels split: only queries judged in that split are kept."""

    name: str
    split: str
    documents: list[SourceDocument]
    queries: dict[str, str]
    qrels: Qrels


class RetrievalReport(BaseModel):
    """Mean metrics over the evaluated queries; JSON keys are ``ndcg@10``, ``recall@100``,
    ``mrr@10``, ``queries`` (dump with ``by_alias=True``, which ``model_dump_json`` does here)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    ndcg_at_10: float = Field(serialization_alias="ndcg@10", validation_alias="ndcg@10")
    recall_at_100: float = Field(serialization_alias="recall@100", validation_alias="recall@100")
    mrr_at_10: float = Field(serialization_alias="mrr@10", validation_alias="mrr@10")
    queries: int
    dataset: str = ""
    split: str = ""
    mode: str = ""
    documents: int = 0
    chunks: int = 0
    ingest_seconds: float = 0.0
    queries_per_second: float = 0.0
    settings: dict[str, object] = Field(default_factory=dict)


# -- loading -----------------------------------------------------------------------------------


def load_beir(folder: Path, *, split: str = "test", tenant: str = "default") -> BeirDataset:
    """Read ``corpus.jsonl[.gz]``, ``queries.jsonl`` and ``qrels/<split>.tsv`` (with header)."""
    folder = Path(folder)
    qrels_file = folder / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise FileNotFoundError(f"{qrels_file} does not exist; splits in {folder}: {found or 'none'} "
                                "(pass --split with one of them)")
    qrels = read_qrels(qrels_file)
    documents = [SourceDocument(id=str(r["_id"]), tenant=tenant, title=r.get("title") or "", text=r.get("text") or "",
                                source=f"beir:{folder.name}")
                 for r in _jsonl(_corpus_file(folder))]
    queries = {str(r["_id"]): r["text"] for r in _jsonl(folder / "queries.jsonl") if str(r["_id"]) in qrels}
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{qrels_file} judges {len(missing)} queries missing from {folder / 'queries.jsonl'}, "
                         f"e.g. {sorted(missing)[:3]}")
    return BeirDataset(name=folder.name, split=split, documents=documents, queries=queries, qrels=qrels)


def read_qrels(path: Path) -> Qrels:
    """``query-id  corpus-id  score`` rows after a header; grades are integers (0 = not relevant)."""
    qrels: Qrels = {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows, None)
        if header is None or len(header) < 3:
            raise ValueError(f"{path} has no 'query-id<TAB>corpus-id<TAB>score' header line")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{line}: expected 3 tab-separated columns, got {row!r}")
            qrels.setdefault(row[0], {})[row[1]] = int(float(row[2]))
    return qrels


def _corpus_file(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder} has neither corpus.jsonl nor corpus.jsonl.gz (BEIR layout expected)")


def _jsonl(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


# -- metrics -------------------------------------------------------------------------------------


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = NDCG_DEPTH) -> float:
    dcg = sum(max(judged.get(doc, 0), 0) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], start=1))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = RECALL_DEPTH) -> float:
    relevant = {doc for doc, g in judged.items() if g > 0}
    return len(relevant.intersection(ranking[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = MRR_DEPTH) -> float:
    for rank, doc in enumerate(ranking[:k], start=1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def score_rankings(rankings: Mapping[str, Sequence[str]], qrels: Qrels) -> dict[str, float]:
    """Mean nDCG@10, recall@100, MRR@10 over the judged queries that have a relevant document;
    a judged query missing from ``rankings`` counts as an empty ranking (all zeros)."""
    judged = [qid for qid, docs in qrels.items() if any(g > 0 for g in docs.values())]
    if not judged:
        raise ValueError("the qrels hold no query with a relevant (grade > 0) document")
    totals = {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    for qid in judged:
        ranking = _unique(rankings.get(qid, ()))
        totals["ndcg@10"] += ndcg_at_k(ranking, qrels[qid])
        totals["recall@100"] += recall_at_k(ranking, qrels[qid])
        totals["mrr@10"] += reciprocal_rank_at_k(ranking, qrels[qid])
    return {**{name: value / len(judged) for name, value in totals.items()}, "queries": len(judged)}


def documents_of(hits: Iterable[SearchHit]) -> list[str]:
    """Chunk hits (best first) → document ids, each at the rank of its best chunk."""
    return _unique(hit.chunk.document_id for hit in hits)


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# -- running a retriever ----------------------------------------------------------------------------


def ingest_corpus(data: BeirDataset, pipeline: IngestPipeline, *, tenant: str = "default",
                  batch_documents: int = 256, progress: Progress | None = None) -> int:
    """Index every corpus document under ``tenant``; returns the number of chunks written."""
    chunks = 0
    total = len(data.documents)
    for start in range(0, total, batch_documents):
        batch = [d.model_copy(update={"tenant": tenant}) for d in data.documents[start:start + batch_documents]]
        chunks += sum(r.chunks for r in pipeline.ingest_many(batch))
        if progress:
            progress("ingest", min(start + batch_documents, total), total)
    return chunks


def run_queries(data: BeirDataset, retriever: HybridRetriever, *, mode: SearchMode = "hybrid",
                tenant: str = "default", chunks_per_query: int = 3 * RECALL_DEPTH,
                progress: Progress | None = None) -> tuple[dict[str, list[str]], float]:
    """Document rankings per query and the query throughput (queries/s, query embedding
    included). ``chunks_per_query`` chunks are retrieved so that ~100 distinct documents remain
    after mapping chunks to documents."""
    rankings: dict[str, list[str]] = {}
    started = time.perf_counter()
    for done, (qid, text) in enumerate(data.queries.items(), start=1):
        hits = retriever.retrieve(text, tenant=tenant, k=chunks_per_query, mode=mode)
        rankings[qid] = documents_of(hits)[:RECALL_DEPTH]
        if progress:
            progress("query", done, len(data.queries))
    elapsed = time.perf_counter() - started
    return rankings, len(data.queries) / elapsed if elapsed > 0 else 0.0


def evaluate_retrieval(dataset: Path | BeirDataset, *, pipeline: IngestPipeline, retriever: HybridRetriever,
                       split: str = "test", mode: SearchMode = "hybrid", tenant: str = "beir-eval",
                       ingest: bool = True, progress: Progress | None = None) -> RetrievalReport:
    """Ingest a BEIR corpus through ``pipeline`` into ``tenant`` (skip with ``ingest=False``
    when it is already there), run every judged query of ``split`` through ``retriever`` in
    ``mode`` and score the document rankings. ``pipeline`` and ``retriever`` must share one
    backend, which should be fresh (a temporary home, or a dedicated OpenSearch index prefix)
    so that no other document competes with the corpus."""
    data = dataset if isinstance(dataset, BeirDataset) else load_beir(Path(dataset), split=split, tenant=tenant)
    chunks, ingest_seconds = 0, 0.0
    if ingest:
        started = time.perf_counter()
        chunks = ingest_corpus(data, pipeline, tenant=tenant, progress=progress)
        ingest_seconds = time.perf_counter() - started
    rankings, qps = run_queries(data, retriever, mode=mode, tenant=tenant, progress=progress)
    metrics = score_rankings(rankings, data.qrels)
    return RetrievalReport(
        ndcg_at_10=metrics["ndcg@10"], recall_at_100=metrics["recall@100"], mrr_at_10=metrics["mrr@10"],
        queries=int(metrics["queries"]), dataset=data.name, split=data.split, mode=mode,
        documents=len(data.documents), chunks=chunks, ingest_seconds=round(ingest_seconds, 3),
        queries_per_second=round(qps, 2),
        settings={"retriever": retriever.to_dict(), "chunker": pipeline.chunker.to_dict()},
    )
