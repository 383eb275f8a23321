"""Access lists on the embedded backend, at a scale the integration tests cannot afford.

The same rules are specified for both backends in tests/integration/test_search_backends.py:
an empty access list means the whole tenant may read the chunk; otherwise the query's
principals must share an entry with it; no principals means unrestricted chunks only.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from indexing.backends.embedded import EmbeddedBackend
from indexing.types import Chunk

DIM = 16
PRINCIPALS = [f"user:{i}" for i in range(6)] + ["group:a", "group:b"]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


def test_random_queries_never_see_another_tenant_or_a_chunk_they_may_not_read(tmp_path: Path):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    vectors_rng = np.random.default_rng(seed)
    for tenant in ("t1", "t2", "t3"):
        for d in range(40):
            document_id = f"{tenant}-doc{d}"
            access = rng.sample(PRINCIPALS, rng.choice([0, 0, 1, 2]))
            chunks = [Chunk(id=f"{document_id}-{o}", document_id=document_id, tenant=tenant, ordinal=o,
                            text=" ".join(rng.choices(WORDS, k=8)), access=access) for o in range(3)]
            backend.replace_document(document_id, tenant, chunks, vectors_rng.normal(size=(3, DIM)))
    for _ in range(300):
        tenant = rng.choice(["t1", "t2", "t3", "t4"])
        principals = rng.choice([None, [], rng.sample(PRINCIPALS, rng.randint(1, 3)), ["user:unknown"]])
        k = rng.randint(1, 50)
        hits = (backend.search_bm25(tenant=tenant, text=" ".join(rng.sample(WORDS, 2)), k=k, principals=principals)
                + backend.search_dense(tenant=tenant, vector=vectors_rng.normal(size=DIM), k=k, principals=principals))
        for hit in hits:
            where = f"seed={seed} tenant={tenant} principals={principals}"
            assert hit.chunk.tenant == tenant, where
            assert not hit.chunk.access or set(hit.chunk.access) & set(principals or ()), where


def test_restricted_chunks_do_not_crowd_readable_ones_out_of_the_top_k(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    target = np.ones(DIM, dtype=np.float32)
    secret = [Chunk(id=f"s{i}", document_id="secret", tenant="t", ordinal=i, text="apple pie", access=["group:hr"])
              for i in range(20)]
    backend.replace_document("secret", "t", secret, np.tile(target, (20, 1)))
    public = [Chunk(id="p0", document_id="public", tenant="t", ordinal=0, text="apple")]
    backend.replace_document("public", "t", public, (target + 0.5 * np.eye(DIM)[0])[None, :])
    assert [h.chunk.id for h in backend.search_dense(tenant="t", vector=target, k=1)] == ["p0"]
    assert [h.chunk.id for h in backend.search_bm25(tenant="t", text="apple pie", k=1)] == ["p0"]
    assert backend.search_dense(tenant="t", vector=target, k=1, principals=["group:hr"])[0].chunk.id.startswith("s")


def test_an_updated_access_list_takes_effect_at_once(tmp_path: Path):
    backend = EmbeddedBackend(tmp_path, dimension=DIM)
    chunk = Chunk(id="c", document_id="d", tenant="t", ordinal=0, text="quarterly numbers", access=["group:finance"])
    backend.replace_document("d", "t", [chunk], np.ones((1, DIM)))
    assert backend.search_bm25(tenant="t", text="numbers", k=5, principals=["user:x"]) == []
    backend.replace_document("d", "t", [chunk.model_copy(update={"access": ["user:x"]})], np.ones((1, DIM)))
    assert [h.chunk.id for h in backend.search_bm25(tenant="t", text="numbers", k=5, principals=["user:x"])] == ["c"]


def test_the_retriever_passes_the_askers_principals_to_the_backend_in_every_mode(tmp_path: Path):
    from indexing.retriever import HybridRetriever
    from models.embedder import TextEmbedder

    embedder = TextEmbedder()
    backend = EmbeddedBackend(tmp_path, dimension=embedder.dimension)
    texts = {"open": "The canteen serves lunch at noon.", "salaries": "The salary review for the canteen staff is in March."}
    for document_id, text in texts.items():
        chunk = Chunk(id=document_id, document_id=document_id, tenant="acme", ordinal=0, text=text,
                      access=["group:hr"] if document_id == "salaries" else [])
        backend.replace_document(document_id, "acme", [chunk], embedder.embed([text]))
    retriever = HybridRetriever(embedder, backend)
    try:
        for mode in ("bm25", "dense", "hybrid"):
            def found(principals, mode=mode):
                return {h.chunk.document_id for h in retriever.retrieve("canteen salary review", tenant="acme", k=5, mode=mode,
                                                                        principals=principals)}
            assert found(["group:hr"]) == {"open", "salaries"}, mode
            assert found(None) == found(["user:7"]) == {"open"}, mode
    finally:
        backend.close()
