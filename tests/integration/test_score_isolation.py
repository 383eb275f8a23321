"""#11 item 10: what a tenant is shown of its search scores does not move when another tenant's corpus changes.

On OpenSearch every tenant shares one index, so BM25's statistics (document frequency, average length)
span tenants, and a raw score tells a tenant whether another tenant's documents hold a term. Citations
therefore carry reciprocal-rank scores (`rank_scores`). The test changes tenant B's corpus under a query
of tenant A's on both backends: A's raw scores move on OpenSearch (the channel is real) and stay put on
the embedded backend (per-tenant statistics); A's shown scores and order stay put on both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing.backends.base import SearchBackend, rank_scores
from indexing.backends.embedded import EmbeddedBackend
from indexing.types import Chunk

DIMENSION = 4
QUERY = "ostra"
TENANT_A = {"a1": "The Ostra report for the quarter.", "a2": "Ostra. Ostra again, the Ostra figures, and a long tail of other words here.",
            "a3": "Minutes of the Ostra meeting held on Tuesday about budgets and travel."}


def _write(backend: SearchBackend, tenant: str, docs: dict[str, str]) -> None:
    for document_id, text in docs.items():
        chunk = Chunk(id=f"{tenant}-{document_id}-0", document_id=document_id, tenant=tenant, ordinal=0, text=text)
        backend.replace_document(document_id, tenant, [chunk], np.ones((1, DIMENSION), dtype=np.float32))


@pytest.fixture(params=["embedded", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def backend(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> SearchBackend:
    if request.param == "embedded":
        embedded = EmbeddedBackend(tmp_path / "index", dimension=DIMENSION)
        request.addfinalizer(embedded.close)
        return embedded
    from indexing.backends.opensearch import OpenSearchBackend

    remote = OpenSearchBackend(request.getfixturevalue("opensearch_url"), dimension=DIMENSION, index_prefix=f"ragloop-walls-{unique}")

    def drop() -> None:
        remote.drop_index()
        remote.close()

    request.addfinalizer(drop)
    return remote


def test_another_tenants_corpus_does_not_move_the_scores_a_tenant_is_shown(backend: SearchBackend) -> None:
    _write(backend, "tenantA", TENANT_A)
    _write(backend, "tenantB", {"b0": "Nothing in common."})
    before = backend.search_bm25(tenant="tenantA", text=QUERY, k=10)
    _write(backend, "tenantB", {f"b{n}": f"Ostra ostra shipment {n}." for n in range(1, 40)})
    after = backend.search_bm25(tenant="tenantA", text=QUERY, k=10)
    raw_moved = [round(h.score, 6) for h in before] != [round(h.score, 6) for h in after]
    assert raw_moved == (not isinstance(backend, EmbeddedBackend))  # the channel exists where statistics are shared
    shown_before, shown_after = rank_scores(before), rank_scores(after)
    assert [(h.chunk.id, h.score) for h in shown_before] == [(h.chunk.id, h.score) for h in shown_after]
    assert [h.score for h in shown_after] == [1.0, 0.5, pytest.approx(1 / 3)]
