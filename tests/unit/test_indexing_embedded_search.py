"""Embedded backend search internals: exact dense ranking and hits callers may mutate safely."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from indexing.backends.embedded import EmbeddedBackend
from indexing.types import Chunk

DIM = 16


def _index(tmp_path: Path, n: int = 50, *, access: list[str] | None = None) -> tuple[EmbeddedBackend, np.ndarray]:
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    vectors = np.random.default_rng(7).normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i in range(n):
        chunk = Chunk(id=f"c{i}", document_id=f"d{i}", tenant="default", ordinal=0, text=f"penguin number {i}",
                      metadata={"page": i, "tags": ["a", "b"]} if i % 2 else {"page": i}, access=access or [])
        backend.replace_document(f"d{i}", "default", [chunk], vectors[i:i + 1])
    return backend, vectors


def test_dense_search_ranks_exactly_by_cosine(tmp_path):
    backend, vectors = _index(tmp_path)
    query = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    expected = np.argsort(-(vectors @ (query / np.linalg.norm(query))), kind="stable")
    for k in (1, 10, 50, 80):
        hits = backend.search_dense(tenant="default", vector=query, k=k)
        assert [h.chunk.id for h in hits] == [f"c{i}" for i in expected[:k]]
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_mutating_a_hit_does_not_change_the_index(tmp_path):
    backend, vectors = _index(tmp_path, access=["team-a"])
    for hit in backend.search_dense(tenant="default", vector=vectors[1], k=5, principals=["team-a"]):
        hit.chunk.metadata["page"] = -1
        hit.chunk.metadata.get("tags", []).append("x")
        hit.chunk.access.append("everyone")
        hit.chunk.text = "changed"
    again = backend.search_dense(tenant="default", vector=vectors[1], k=5, principals=["team-a"])
    assert again[0].chunk == backend.get_chunk("c1")
    assert again[0].chunk.metadata == {"page": 1, "tags": ["a", "b"]}
    assert again[0].chunk.access == ["team-a"] and again[0].chunk.text == "penguin number 1"
    assert backend.search_dense(tenant="default", vector=vectors[1], k=5) == []  # still restricted


def test_bm25_hits_are_detached_too(tmp_path):
    backend, _ = _index(tmp_path, n=5)
    hit = backend.search_bm25(tenant="default", text="penguin", k=1)[0]
    number = int(hit.chunk.id.removeprefix("c"))
    hit.chunk.metadata["page"] = -1
    hit.chunk.text = "changed"
    stored = backend.get_chunk(hit.chunk.id)
    assert (stored.metadata["page"], stored.text) == (number, f"penguin number {number}")  # as _index wrote it
