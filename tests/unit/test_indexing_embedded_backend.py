"""The embedded backend's own guarantees: persistence, atomic writes, thread safety, URLs.

The behaviour it shares with OpenSearch is specified in tests/integration/test_search_backends.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from indexing.backends import open_backend
from indexing.backends.embedded import EmbeddedBackend
from indexing.chunking import Chunker
from indexing.types import Chunk, SourceDocument

DIM = 8


def chunks_and_vectors(document_id: str, text: str, tenant: str = "default", seed: int = 0):
    chunks = Chunker(max_tokens=30, overlap_tokens=0).split(SourceDocument(id=document_id, tenant=tenant, text=text))
    vectors = np.random.default_rng(seed).normal(size=(len(chunks), DIM)).astype(np.float32)
    return chunks, vectors


def test_index_survives_a_restart(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    chunks, vectors = chunks_and_vectors("d1", "Penguins live in Antarctica. They eat krill.")
    backend.replace_document("d1", "default", chunks, vectors)
    before = backend.search_dense(tenant="default", vector=vectors[0], k=3)
    backend.close()

    reopened = EmbeddedBackend(tmp_path, dimension=DIM)
    assert reopened.count() == len(chunks)
    assert reopened.get_chunk(chunks[0].id) == chunks[0]
    assert reopened.search_dense(tenant="default", vector=vectors[0], k=3) == before
    assert reopened.search_bm25(tenant="default", text="penguin", k=1)[0].chunk.document_id == "d1"


def test_reopening_with_another_dimension_is_refused(tmp_path: Path):
    EmbeddedBackend(tmp_path, dimension=DIM).close()
    with pytest.raises(ValueError, match="8-dimensional"):
        EmbeddedBackend(tmp_path, dimension=DIM * 2)


def test_a_rejected_write_changes_nothing(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    chunks, vectors = chunks_and_vectors("d1", "Original text about volcanoes.")
    backend.replace_document("d1", "default", chunks, vectors)
    new_chunks, _ = chunks_and_vectors("d1", "Replacement text about glaciers.")
    with pytest.raises(ValueError, match="shape"):
        backend.replace_document("d1", "default", new_chunks, np.zeros((5, DIM), dtype=np.float32))
    assert [h.chunk.id for h in backend.search_bm25(tenant="default", text="volcanoes", k=5)] == [chunks[0].id]
    assert backend.count() == 1


def test_chunks_of_another_document_are_refused(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    chunks, vectors = chunks_and_vectors("d1", "Some text.")
    with pytest.raises(ValueError, match="belongs to"):
        backend.replace_document("d2", "default", chunks, vectors)


def test_concurrent_writers_and_readers_leave_a_consistent_index(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for version in range(15):
                document_id = f"w{worker}-d{version % 3}"
                chunks, vectors = chunks_and_vectors(document_id, f"Worker {worker} writes version {version}. " * 6,
                                                     seed=version)
                backend.replace_document(document_id, "default", chunks, vectors)
                backend.search_bm25(tenant="default", text=f"worker {worker}", k=5)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = backend.count()
    backend.close()
    reopened = EmbeddedBackend(tmp_path, dimension=DIM)
    assert reopened.count() == expected
    documents = {reopened.get_chunk(h.chunk.id).document_id
                 for h in reopened.search_dense(tenant="default", vector=np.ones(DIM), k=1000)}
    assert documents == {f"w{w}-d{d}" for w in range(6) for d in range(3)}


def test_a_small_tenant_is_never_starved_by_a_big_one(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    target = np.ones(DIM, dtype=np.float32)
    for i in range(200):
        chunk = Chunk(id=f"big-{i}", document_id=f"b{i}", tenant="big", ordinal=0, text="apple apple apple")
        backend.replace_document(f"b{i}", "big", [chunk], target[None, :] + 0.01 * i)
    small = Chunk(id="small-0", document_id="s0", tenant="small", ordinal=0, text="an apple and pears")
    backend.replace_document("s0", "small", [small], -target[None, :])
    assert [h.chunk.id for h in backend.search_dense(tenant="small", vector=target, k=1)] == ["small-0"]
    assert [h.chunk.id for h in backend.search_bm25(tenant="small", text="apple", k=1)] == ["small-0"]


def test_bm25_returns_only_matching_chunks(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    chunks, vectors = chunks_and_vectors("d1", "Volcanoes erupt lava.\n\nGlaciers move slowly.")
    backend.replace_document("d1", "default", chunks, vectors)
    assert backend.search_bm25(tenant="default", text="the of and", k=5) == []
    assert backend.search_bm25(tenant="default", text="unicorns", k=5) == []
    assert backend.search_bm25(tenant="nobody", text="lava", k=5) == []


def test_open_backend_puts_the_embedded_index_under_home(tmp_path: Path):
    backend = open_backend("embedded://", home=tmp_path, dimension=DIM)
    assert isinstance(backend, EmbeddedBackend) and backend.folder == tmp_path / "index"
    backend.close()


@pytest.mark.parametrize("url", ["ftp://host", "sqlite:///x.db", "localhost:9200", "http://"])
def test_open_backend_rejects_unknown_urls_naming_the_accepted_forms(tmp_path: Path, url: str):
    with pytest.raises(ValueError, match=r"embedded://.*opensearch://"):
        open_backend(url, home=tmp_path, dimension=DIM)
