"""Retrieval evaluation on BEIR-layout folders: loading, the three metrics, and a full run.

Metric expectations are written out by hand from the definitions (graded gain over log2 of
rank + 1, ideal ordering from all judged documents; recall over relevant documents; reciprocal
rank of the first relevant document within the cut-off).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from evaluation.retrieval import (
    RetrievalReport,
    evaluate_retrieval,
    load_beir,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank_at_k,
    score_rankings,
)
from indexing.backends.embedded import EmbeddedBackend
from indexing.chunking import Chunker
from indexing.pipeline import IngestPipeline
from indexing.retriever import HybridRetriever
from tests.support import require_module

CORPUS = [
    {"_id": "d1", "title": "Volcanoes", "text": "Volcanoes erupt molten lava and ash."},
    {"_id": "d2", "title": "Glaciers", "text": "Glaciers are rivers of ice that move slowly."},
    {"_id": "d3", "title": "Deserts", "text": "Deserts receive very little rain each year."},
    {"_id": "d4", "title": "Coral reefs", "text": "Coral reefs grow in warm shallow seas."},
]
QUERIES = [
    {"_id": "q1", "text": "molten lava eruption"},
    {"_id": "q2", "text": "rivers of ice"},
    {"_id": "q3", "text": "warm shallow seas coral"},
    {"_id": "q-unjudged", "text": "not in the qrels"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\nq2\td2\t1\nq3\td4\t1\n"


def write_beir(folder: Path, *, gzipped: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r) + "\n" for r in CORPUS)
    if gzipped:
        with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
            f.write(lines)
    else:
        (folder / "corpus.jsonl").write_text(lines, encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in QUERIES), encoding="utf-8")
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(QRELS, encoding="utf-8")
    return folder


class HashingEmbedder:
    """Deterministic bag-of-words vectors with the real embedder interface (no model needed)."""

    dimension = 64

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[i] += np.random.default_rng(seed).normal(size=self.dimension)
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


# -- metrics ----------------------------------------------------------------------------------


def test_ndcg_uses_graded_gains_and_the_ideal_order_of_all_judged_documents():
    judged = {"a": 2, "b": 1, "c": 0}
    dcg = 2 / math.log2(3) + 1 / math.log2(5)  # a at rank 2, b at rank 4
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["c", "a", "x", "b"], judged) == pytest.approx(dcg / idcg)


def test_ndcg_counts_only_the_top_k():
    assert ndcg_at_k([f"n{i}" for i in range(10)] + ["a"], {"a": 1}) == 0.0


def test_recall_is_the_share_of_relevant_documents_in_the_top_k():
    judged = {"a": 1, "b": 3, "c": 0}
    assert recall_at_k(["c", "a"], judged) == pytest.approx(0.5)
    assert recall_at_k(["x", "a", "b"], judged, k=2) == pytest.approx(0.5)


def test_reciprocal_rank_is_of_the_first_relevant_document_within_the_cutoff():
    judged = {"a": 1, "b": 0}
    assert reciprocal_rank_at_k(["b", "x", "a"], judged) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k([f"n{i}" for i in range(10)] + ["a"], judged) == 0.0


def test_scores_are_means_over_queries_with_a_relevant_document():
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}, "q3": {"d": 0}}
    metrics = score_rankings({"q1": ["b", "a"], "q2": ["x", "y"], "q3": ["d"]}, qrels)
    ndcg_q1 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert metrics == pytest.approx({"ndcg@10": ndcg_q1 / 2, "recall@100": 0.5, "mrr@10": 0.5, "queries": 2})


def test_a_judged_query_without_a_ranking_scores_zero():
    metrics = score_rankings({}, {"q1": {"a": 1}})
    assert metrics == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "queries": 1}


def test_repeated_documents_in_a_ranking_count_once():
    assert score_rankings({"q": ["a", "a", "b"]}, {"q": {"b": 1}})["mrr@10"] == pytest.approx(0.5)


def test_metrics_agree_with_trec_eval_on_random_rankings():
    pytrec_eval = require_module("pytrec_eval")  # the reference implementation; missing fails in CI
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(300)]
    qrels = {f"q{i}": {d: rng.choice([1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 6))} for i in range(40)}
    rankings = {q: rng.sample(docs, 150) for q in qrels}
    ours = score_rankings(rankings, qrels)
    run = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in rankings.items()}
    measures = {"ndcg_cut.10", "recall.100", "recip_rank"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    # trec_eval's recip_rank has no cut-off; apply MRR's @10 to it by zeroing ranks past 10.
    theirs_mrr = np.mean([v["recip_rank"] if v["recip_rank"] >= 0.1 else 0.0 for v in per_query.values()])
    assert ours["ndcg@10"] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in per_query.values()]), abs=1e-9)
    assert ours["recall@100"] == pytest.approx(np.mean([v["recall_100"] for v in per_query.values()]), abs=1e-9)
    assert ours["mrr@10"] == pytest.approx(theirs_mrr, abs=1e-9)


# -- loading ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True])
def test_load_reads_plain_or_gzipped_corpus_and_keeps_only_judged_queries(tmp_path: Path, gzipped: bool):
    data = load_beir(write_beir(tmp_path / "set", gzipped=gzipped), split="test", tenant="eval")
    assert [d.id for d in data.documents] == ["d1", "d2", "d3", "d4"]
    assert data.documents[0].title == "Volcanoes" and data.documents[0].tenant == "eval"
    assert set(data.queries) == {"q1", "q2", "q3"}
    assert data.qrels["q1"] == {"d1": 2, "d2": 0}


def test_a_missing_split_names_the_splits_that_exist(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"train\.tsv.*\['test'\]"):
        load_beir(write_beir(tmp_path / "set"), split="train")


def test_a_folder_without_a_corpus_is_refused(tmp_path: Path):
    folder = write_beir(tmp_path / "set")
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"corpus\.jsonl"):
        load_beir(folder, split="test")


# -- a full run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_evaluate_retrieval_ingests_queries_and_scores_each_mode(tmp_path: Path, mode: str):
    embedder = HashingEmbedder()
    backend = EmbeddedBackend(tmp_path / "index", dimension=embedder.dimension)
    pipeline = IngestPipeline(Chunker(max_tokens=40, overlap_tokens=8), embedder, backend)
    stages: list[tuple[str, int, int]] = []
    report = evaluate_retrieval(write_beir(tmp_path / "set"), split="test", pipeline=pipeline,
                                retriever=HybridRetriever(embedder, backend), mode=mode, tenant="eval",
                                progress=lambda *args: stages.append(args))
    backend.close()
    assert report.queries == 3 and report.documents == 4 and report.chunks == 4
    assert report.ndcg_at_10 == pytest.approx(1.0) and report.mrr_at_10 == pytest.approx(1.0)
    assert report.recall_at_100 == pytest.approx(1.0)
    assert ("ingest", 4, 4) in stages and stages[-1] == ("query", 3, 3)


def test_report_json_has_the_documented_keys():
    report = RetrievalReport(ndcg_at_10=0.5, recall_at_100=0.9, mrr_at_10=0.4, queries=3)
    dumped = json.loads(report.model_dump_json())
    assert {"ndcg@10": 0.5, "recall@100": 0.9, "mrr@10": 0.4, "queries": 3}.items() <= dumped.items()
    assert RetrievalReport.model_validate(dumped) == report
