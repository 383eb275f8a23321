"""Ingest pipeline and hybrid retriever over the embedded backend.

The embedder here is a deterministic bag-of-words hasher (a stand-in with the real
interface, not a mock of any service), so these tests run in milliseconds; the real
MiniLM embedder is exercised in tests/integration/test_search_backends.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.embedded import EmbeddedBackend
from indexing.chunking import Chunker
from indexing.pipeline import IngestPipeline
from indexing.retriever import HybridRetriever
from indexing.types import SourceDocument


class HashingEmbedder:
    """Sum of one fixed random vector per lowercase word, L2-normalised."""

    dimension = 64

    def __init__(self) -> None:
        self.calls: list[int] = []

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=self.dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i] += self._word(word)
            out[i] /= max(np.linalg.norm(out[i]), 1e-9)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


DOCS = [
    SourceDocument(id="volcano", title="Volcanoes", text="Volcanoes erupt molten lava and ash."),
    SourceDocument(id="glacier", title="Glaciers", text="Glaciers are rivers of ice that move slowly."),
    SourceDocument(id="desert", title="Deserts", text="Deserts receive very little rain each year."),
]


@pytest.fixture
def parts(tmp_path: Path):
    embedder = HashingEmbedder()
    backend = EmbeddedBackend(tmp_path, dimension=embedder.dimension)
    yield embedder, backend, IngestPipeline(Chunker(max_tokens=40, overlap_tokens=8), embedder, backend)
    backend.close()


def test_ingest_reports_the_chunks_it_indexed(parts):
    _, backend, pipeline = parts
    report = pipeline.ingest(DOCS[0])
    assert (report.document_id, report.tenant, report.chunks) == ("volcano", "default", 1)
    assert backend.get_chunk(report.chunk_ids[0]).text == DOCS[0].text


def test_ingest_many_embeds_chunks_of_several_documents_together(parts):
    embedder, backend, pipeline = parts
    reports = pipeline.ingest_many(DOCS)
    assert [r.document_id for r in reports] == ["volcano", "glacier", "desert"]
    assert embedder.calls == [3] and backend.count() == 3


def test_delete_removes_the_document(parts):
    _, backend, pipeline = parts
    pipeline.ingest_many(DOCS)
    assert pipeline.delete("default", "glacier") == 1
    assert backend.count() == 2


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_mode_finds_the_matching_document(parts, mode):
    embedder, backend, pipeline = parts
    pipeline.ingest_many(DOCS)
    hits = HybridRetriever(embedder, backend).retrieve("where does lava come from volcanoes", k=2, mode=mode)
    assert hits[0].chunk.document_id == "volcano"


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
def test_hybrid_fuses_both_retrievers(parts, fusion):
    embedder, backend, pipeline = parts
    pipeline.ingest_many(DOCS)
    retriever = HybridRetriever(embedder, backend, fusion=fusion, candidates=3)
    hits = retriever.retrieve("ice rivers", k=3)
    assert hits[0].chunk.document_id == "glacier" and len(hits) <= 3


def test_retrieval_is_scoped_to_the_tenant(parts):
    embedder, backend, pipeline = parts
    pipeline.ingest_many(DOCS)
    pipeline.ingest(SourceDocument(id="acme-1", tenant="acme", text="Acme sells volcano insurance."))
    hits = HybridRetriever(embedder, backend).retrieve("volcano", tenant="acme", k=5)
    assert [h.chunk.document_id for h in hits] == ["acme-1"]


def test_empty_query_returns_nothing(parts):
    embedder, backend, pipeline = parts
    pipeline.ingest_many(DOCS)
    assert HybridRetriever(embedder, backend).retrieve("   ") == []


@pytest.mark.parametrize("options", [{"mode": "fuzzy"}, {"fusion": "max"}, {"alpha": 2.0}, {"candidates": 0}])
def test_bad_retriever_settings_are_rejected(parts, options):
    embedder, backend, _ = parts
    with pytest.raises(ValueError):
        HybridRetriever(embedder, backend, **options)


def _long_document(version: str, sentences: int) -> SourceDocument:
    text = " ".join(f"Paragraph {n} of the {version} manual covers valve {n}." for n in range(sentences))
    return SourceDocument(id="manual", title="Manual", text=text)


def test_a_document_bigger_than_one_write_is_written_in_slices_and_replaces_its_old_version(tmp_path: Path):
    embedder = HashingEmbedder()
    backend = EmbeddedBackend(tmp_path, dimension=embedder.dimension)
    pipeline = IngestPipeline(Chunker(max_tokens=24, overlap_tokens=4), embedder, backend, batch_size=4, write_chunks=5)
    stages: list[tuple[str, dict[str, int]]] = []
    old = pipeline.ingest(_long_document("old", 30))
    new = pipeline.ingest(_long_document("new", 20), on_stage=lambda stage, counts: stages.append((stage, counts)))
    assert old.chunks > 5 and new.chunks > 5
    assert max(embedder.calls) <= 4  # never more than one embedding batch at a time
    embedded = [counts for stage, counts in stages if stage == "embedded"]
    assert [c["chunks"] for c in embedded] == [*range(5, new.chunks, 5), new.chunks]
    assert all(c["total"] == new.chunks for c in embedded)
    assert backend.count() == new.chunks  # nothing of the old version is left
    assert {backend.get_chunk(i).text for i in new.chunk_ids} == {c.text for c in Chunker(max_tokens=24, overlap_tokens=4).split(_long_document("new", 20))}
    assert pipeline.ingest(_long_document("new", 20)).chunk_ids == new.chunk_ids and backend.count() == new.chunks
    backend.close()
