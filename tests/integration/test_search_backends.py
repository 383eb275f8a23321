"""Both search backends (embedded and OpenSearch) meet one behavioural specification.

Every test here runs once per backend with the real MiniLM embedder. The OpenSearch runs need
a node (deploy/local/opensearch.sh start; URL from RAGLOOP_TEST_OPENSEARCH_URL, default
http://127.0.0.1:9200) and skip with the reason when it does not answer; each uses its own
index, deleted afterwards.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.base import SearchBackend
from indexing.backends.embedded import EmbeddedBackend
from indexing.chunking import Chunker
from indexing.pipeline import IngestPipeline
from indexing.retriever import HybridRetriever
from indexing.types import SourceDocument

CORPUS = {
    "volcano": ("Volcanoes", "A volcano erupts when magma rises through the crust. Lava flows and ash clouds "
                "follow an eruption.\n\nThe island of Iceland has many active volcanoes."),
    "glacier": ("Glaciers", "Glaciers are slow rivers of ice formed from compacted snow. They carve valleys as "
                "they move downhill."),
    "coffee": ("Coffee", "Coffee is brewed from roasted coffee beans. Caffeine in coffee is a mild stimulant "
               "that keeps people awake."),
    "kafka": ("Apache Kafka", "Apache Kafka is a distributed event streaming platform. Producers append records "
              "to partitioned topics and consumer groups read them."),
    "penguin": ("Penguins", "Penguins are flightless seabirds of the southern hemisphere. Emperor penguins "
                "breed during the Antarctic winter."),
    "vaccine": ("Vaccines", "Vaccines train the immune system to recognise a pathogen. Antibodies produced after "
                "vaccination protect against later infection."),
    "bread": ("Sourdough bread", "Sourdough bread rises with a starter of wild yeast and lactic acid bacteria "
              "instead of commercial yeast."),
    "chess": ("Chess openings", "The Sicilian Defence is a chess opening that answers the king's pawn with the "
              "c-pawn. Grandmasters study openings for years."),
}
QUERIES = {  # query -> the document that answers it
    "how does lava come out of a volcano": "volcano",
    "slow moving ice that carves valleys": "glacier",
    "caffeine stimulant drink": "coffee",
    "consumer groups reading partitioned topics": "kafka",
    "flightless birds breeding in Antarctic winter": "penguin",
    "antibodies immune protection": "vaccine",
    "wild yeast starter for baking": "bread",
    "Sicilian Defence opening": "chess",
}
# The tenant and access layouts below are drawn at random once, with this seed, so a failure reproduces.
# Drawn with it: documents shared by several tenants, a tenant holding one document, and public,
# single-principal and two-principal documents side by side.
SEED = 16
# Each query's document outscores every other document by at least this much in cosine (measured:
# 0.49 to 0.67), so the top-1 checks cannot flip on a near-tie between runs or backends.
DENSE_MARGIN = 0.3


def documents(tenant: str = "default", ids=None) -> list[SourceDocument]:
    return [SourceDocument(id=i, tenant=tenant, title=CORPUS[i][0], text=CORPUS[i][1]) for i in (ids or CORPUS)]


@pytest.fixture(scope="module")
def embedder():
    from models.embedder import TextEmbedder

    return TextEmbedder()


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path, unique: str, dimension: int) -> SearchBackend:
    if kind == "embedded":
        backend: SearchBackend = EmbeddedBackend(tmp_path / "index", dimension=dimension)
        request.addfinalizer(backend.close)
        return backend
    url = request.getfixturevalue("opensearch_url")
    from indexing.backends.opensearch import OpenSearchBackend

    backend = OpenSearchBackend(url, dimension=dimension, index_prefix=f"ragloop-test-{unique}")

    def drop() -> None:
        backend.drop_index()
        backend.close()

    request.addfinalizer(drop)
    return backend


@pytest.fixture(params=["embedded", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def backend(request, tmp_path, unique, embedder) -> SearchBackend:
    return make_backend(request.param, request, tmp_path, unique, embedder.dimension)


@pytest.fixture
def pipeline(backend, embedder) -> IngestPipeline:
    return IngestPipeline(Chunker(max_tokens=24, overlap_tokens=6), embedder, backend)


def top_documents(hits, n: int | None = None) -> list[str]:
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.chunk.document_id, None)
    return list(seen)[:n]


def test_each_query_finds_its_document_first_by_a_clear_dense_margin(pipeline, backend, embedder):
    """What the top-1 checks on random subsets below rely on: removing documents cannot unseat a clear leader."""
    pipeline.ingest_many(documents())
    for query, expected in QUERIES.items():
        best: dict[str, float] = {}
        for hit in backend.search_dense(tenant="default", vector=embedder.embed_query(query), k=100):
            best.setdefault(hit.chunk.document_id, hit.score)
        runner_up = max(score for document, score in best.items() if document != expected)
        assert best[expected] - runner_up >= DENSE_MARGIN, query


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_each_query_finds_its_document_first(pipeline, backend, embedder, mode):
    pipeline.ingest_many(documents())
    retriever = HybridRetriever(embedder, backend)
    for query, expected in QUERIES.items():
        assert top_documents(retriever.retrieve(query, k=5, mode=mode), 1) == [expected], query


def test_stored_chunks_come_back_intact(pipeline, backend):
    reports = pipeline.ingest_many(documents())
    chunk_ids = [cid for r in reports for cid in r.chunk_ids]
    assert backend.count() == backend.count("default") == len(chunk_ids) > len(CORPUS)  # some documents split
    expected = {c.id: c for doc in documents() for c in pipeline.chunker.split(doc)}
    for cid in chunk_ids:
        assert backend.get_chunk(cid) == expected[cid]
    assert backend.get_chunk("no-such-chunk") is None


def test_a_document_written_in_slices_replaces_its_old_version(backend, embedder):
    pipeline = IngestPipeline(Chunker(max_tokens=24, overlap_tokens=6), embedder, backend, write_chunks=3)

    def manual(version: str, n: int) -> SourceDocument:
        return SourceDocument(id="manual", title="Manual", text=" ".join(f"Step {i} of the {version} guide: turn valve {i}." for i in range(n)))

    old = pipeline.ingest(manual("old", 24))
    new = pipeline.ingest(manual("revised", 15))
    assert old.chunks > 3 and new.chunks > 3
    assert backend.count() == new.chunks
    assert all(backend.get_chunk(cid) is not None for cid in new.chunk_ids)
    assert all(backend.get_chunk(cid) is None for cid in set(old.chunk_ids) - set(new.chunk_ids))


def test_replacing_a_document_drops_its_old_chunks(pipeline, backend):
    pipeline.ingest_many(documents())
    old = pipeline.ingest(documents(ids=["volcano"])[0])
    edited = SourceDocument(id="volcano", title="Volcanoes",
                            text="A volcano erupts when magma rises through the crust. Lava flows and ash clouds "
                                 "follow an eruption.\n\nJapan's Mount Fuji is a dormant stratovolcano.")
    new = pipeline.ingest(edited)

    kept, gone = set(old.chunk_ids) & set(new.chunk_ids), set(old.chunk_ids) - set(new.chunk_ids)
    assert kept and gone  # the unchanged paragraph keeps its id, the edited one does not
    assert all(backend.get_chunk(cid) is None for cid in gone)
    assert backend.search_bm25(tenant="default", text="Iceland", k=5) == []
    assert top_documents(backend.search_bm25(tenant="default", text="Mount Fuji stratovolcano", k=5)) == ["volcano"]
    assert backend.count() == sum(len(pipeline.chunker.split(d)) for d in documents() if d.id != "volcano") + new.chunks


def test_reingesting_the_same_document_changes_nothing(pipeline, backend, embedder):
    first = pipeline.ingest_many(documents())
    count = backend.count()
    before = HybridRetriever(embedder, backend).retrieve("volcano eruption", k=5)
    second = pipeline.ingest_many(documents())
    assert [r.chunk_ids for r in second] == [r.chunk_ids for r in first]
    assert backend.count() == count
    after = HybridRetriever(embedder, backend).retrieve("volcano eruption", k=5)
    assert [h.chunk.id for h in after] == [h.chunk.id for h in before]


def test_deleting_a_document_removes_all_its_chunks(pipeline, backend, embedder):
    reports = {r.document_id: r for r in pipeline.ingest_many(documents())}
    assert pipeline.delete("default", "kafka") == reports["kafka"].chunks
    assert all(backend.get_chunk(cid) is None for cid in reports["kafka"].chunk_ids)
    hits = HybridRetriever(embedder, backend).retrieve("Apache Kafka partitioned topics", k=20)
    assert "kafka" not in top_documents(hits)
    assert pipeline.delete("default", "kafka") == 0
    assert backend.count() == sum(r.chunks for r in reports.values()) - reports["kafka"].chunks


def test_deleting_in_one_tenant_leaves_the_same_document_in_another(pipeline, backend):
    pipeline.ingest_many(documents("a") + documents("b"))
    assert pipeline.delete("a", "coffee") > 0
    assert top_documents(backend.search_bm25(tenant="b", text="coffee caffeine", k=3), 1) == ["coffee"]


def test_tenants_never_see_each_other(pipeline, backend, embedder):
    rng = random.Random(SEED)
    tenants = {f"tenant-{t}": rng.sample(sorted(CORPUS), rng.randint(1, 4)) for t in range(4)}
    pipeline.ingest_many([d for tenant, ids in tenants.items() for d in documents(tenant, ids)])
    retriever = HybridRetriever(embedder, backend, candidates=20)
    ranked = 0
    for tenant, ids in tenants.items():
        for query, expected in QUERIES.items():
            for mode in ("bm25", "dense", "hybrid"):
                hits = retriever.retrieve(query, tenant=tenant, k=10, mode=mode)
                assert all(h.chunk.tenant == tenant for h in hits), f"{tenant} {mode} {query!r}"
                assert set(top_documents(hits)) <= set(ids), f"{tenant} {mode} {query!r}"
                if expected in ids and mode != "bm25":  # never starved by other tenants' better matches
                    assert expected in top_documents(hits, 1 if mode == "dense" else 3), f"{tenant} {query!r}"
                    ranked += 1
        assert backend.count(tenant) == sum(len(pipeline.chunker.split(d)) for d in documents(tenant, ids))
    assert ranked == 2 * sum(len(ids) for ids in tenants.values())  # the seed's layout ranks every held document


@pytest.mark.opensearch
def test_both_backends_agree_on_top_results(request, tmp_path, unique, embedder):
    backends = {kind: make_backend(kind, request, tmp_path, unique, embedder.dimension)
                for kind in ("embedded", "opensearch")}
    chunker = Chunker(max_tokens=24, overlap_tokens=6)
    for backend in backends.values():
        IngestPipeline(chunker, embedder, backend).ingest_many(documents())
    for query in QUERIES:
        vector = embedder.embed_query(query)
        bm25 = {kind: b.search_bm25(tenant="default", text=query, k=3) for kind, b in backends.items()}
        dense = {kind: b.search_dense(tenant="default", vector=vector, k=3) for kind, b in backends.items()}
        assert bm25["embedded"][0].chunk.id == bm25["opensearch"][0].chunk.id, query
        assert [h.chunk.id for h in dense["embedded"]] == [h.chunk.id for h in dense["opensearch"]], query
        np.testing.assert_allclose([h.score for h in dense["embedded"]], [h.score for h in dense["opensearch"]],
                                   atol=1e-3, err_msg=query)
        np.testing.assert_allclose(bm25["embedded"][0].score, bm25["opensearch"][0].score, rtol=0.05, err_msg=query)


PRINCIPALS = ["user:alice", "user:bob", "group:eng", "group:sales"]


def visible(chunk, principals) -> bool:
    return not chunk.access or bool(set(chunk.access) & set(principals or ()))


def test_access_lists_are_applied_inside_every_query(pipeline, backend, embedder):
    rng = random.Random(SEED)
    docs = []
    for tenant in ("t-1", "t-2", "t-3"):
        for doc in documents(tenant, rng.sample(sorted(CORPUS), 5)):
            doc.access = rng.sample(PRINCIPALS, rng.randint(0, 2))  # 0: the whole tenant may read it
            docs.append(doc)
    pipeline.ingest_many(docs)
    access = {(d.tenant, d.id): d.access for d in docs}
    asking = [None, [], ["user:alice"], ["user:bob", "group:eng"], ["user:mallory"], PRINCIPALS]
    ranked = {"public": 0, "restricted": 0}
    for tenant in ("t-1", "t-2", "t-3"):
        for query, expected in QUERIES.items():
            vector = embedder.embed_query(query)
            for principals in asking:
                for mode, hits in (("bm25", backend.search_bm25(tenant=tenant, text=query, k=10, principals=principals)),
                                   ("dense", backend.search_dense(tenant=tenant, vector=vector, k=10,
                                                                  principals=principals))):
                    where = f"{tenant} {mode} {principals} {query!r}"
                    assert all(h.chunk.tenant == tenant for h in hits), where
                    assert all(visible(h.chunk, principals) for h in hits), where
                    readable = (tenant, expected) in access and visible(
                        SourceDocument(id="x", text="x", access=access[(tenant, expected)]), principals)
                    if readable and mode == "dense":  # never starved by chunks the reader may not see
                        assert top_documents(hits, 1) == [expected], where
                        ranked["restricted" if access[(tenant, expected)] else "public"] += 1
    assert min(ranked.values()) > 0, ranked  # the seed's layout ranks public and restricted documents alike


def test_search_without_principals_sees_only_unrestricted_chunks(pipeline, backend, embedder):
    public, private = documents(ids=["coffee", "kafka"])
    private.access = ["group:eng"]
    pipeline.ingest_many([public, private])
    vector = embedder.embed_query("Apache Kafka topics")
    assert top_documents(backend.search_dense(tenant="default", vector=vector, k=5)) == ["coffee"]
    assert top_documents(backend.search_bm25(tenant="default", text="kafka", k=5)) == []
    assert top_documents(backend.search_bm25(tenant="default", text="kafka", k=5, principals=["group:eng"])) == ["kafka"]


def test_hybrid_candidates_are_the_bm25_and_dense_results_fetched_together(pipeline, backend, embedder):
    public, private = documents(ids=["coffee", "kafka"])
    private.access = ["group:eng"]
    pipeline.ingest_many([public, private])
    for query in QUERIES:
        vector = embedder.embed_query(query)
        for principals in (None, ["group:eng"]):
            pair = backend.search_hybrid(tenant="default", text=query, vector=vector, k=4, principals=principals)
            assert pair == (backend.search_bm25(tenant="default", text=query, k=4, principals=principals),
                            backend.search_dense(tenant="default", vector=vector, k=4, principals=principals)), query
    assert backend.search_hybrid(tenant="default", text="  ", vector=vector, k=4)[0] == []


CJK_CORPUS = [
    SourceDocument(id="tokyo", title="東京", text="東京都は日本の首都です。多くの人が住んでいます。"),
    SourceDocument(id="beijing", title="北京", text="北京是中华人民共和国的首都，有很多历史名胜。"),
    SourceDocument(id="seoul", title="서울", text="서울특별시는 대한민국의 수도이다."),
    SourceDocument(id="kyoto", title="京都", text="京都には古いお寺がたくさんあります。"),
]


@pytest.mark.parametrize("query, expected", [("東京の首都", "tokyo"), ("北京 历史", "beijing"),
                                             ("서울특별시", "seoul"), ("お寺", "kyoto")])
def test_cjk_text_is_searchable_by_words(pipeline, backend, query, expected):
    pipeline.ingest_many(CJK_CORPUS + documents(ids=["coffee"]))
    assert top_documents(backend.search_bm25(tenant="default", text=query, k=5), 1) == [expected]


@pytest.mark.opensearch
def test_reindex_swaps_the_alias_and_queries_answer_the_same(request, tmp_path, unique, embedder):
    backend = make_backend("opensearch", request, tmp_path, unique, embedder.dimension)
    pipeline = IngestPipeline(Chunker(max_tokens=24, overlap_tokens=6), embedder, backend)
    pipeline.ingest_many(documents())
    old = backend.current_index()
    assert old == f"{backend.index_name}-v1"

    def answers():
        out = {}
        for query in QUERIES:
            bm25 = backend.search_bm25(tenant="default", text=query, k=5)
            dense = backend.search_dense(tenant="default", vector=embedder.embed_query(query), k=5)
            out[query] = ([(h.chunk.id, round(h.score, 4)) for h in bm25], [(h.chunk.id, round(h.score, 4)) for h in dense])
        return out

    before = answers()
    new = backend.reindex_to_new_version()
    assert new == backend.current_index() == f"{backend.index_name}-v2"
    assert not backend.client.indices.exists(index=old)
    assert answers() == before
    assert backend.count() == sum(len(pipeline.chunker.split(d)) for d in documents())
    pipeline.ingest(SourceDocument(id="new-doc", title="Tea", text="Green tea is steamed, black tea is oxidised."))
    assert top_documents(backend.search_bm25(tenant="default", text="oxidised tea", k=3), 1) == ["new-doc"]


@pytest.mark.opensearch
def test_an_index_from_before_versioning_is_used_and_then_moved_behind_the_alias(request, tmp_path, unique, embedder):
    from opensearchpy import OpenSearch

    from indexing.backends.opensearch import OpenSearchBackend, index_template

    url = request.getfixturevalue("opensearch_url")
    prefix = f"ragloop-test-{unique}"
    legacy = f"{prefix}-d{embedder.dimension}"
    template = index_template(embedder.dimension)
    del template["mappings"]["properties"]["content"]["fields"]  # as the first release created it
    template["mappings"].pop("_meta")
    client = OpenSearch(hosts=[url])
    client.indices.create(index=legacy, body=template)
    backend = OpenSearchBackend(url, dimension=embedder.dimension, index_prefix=prefix)
    request.addfinalizer(lambda: (backend.drop_index(), backend.close(), client.close()))
    pipeline = IngestPipeline(Chunker(max_tokens=24, overlap_tokens=6), embedder, backend)
    pipeline.ingest_many(documents())
    assert backend.current_index() == legacy
    before = [h.chunk.id for h in backend.search_bm25(tenant="default", text="volcano lava", k=5)]
    assert backend.reindex_to_new_version() == f"{legacy}-v1"
    assert backend.current_index() == f"{legacy}-v1"
    assert list(client.indices.get_alias(name=legacy)) == [f"{legacy}-v1"]
    assert [h.chunk.id for h in backend.search_bm25(tenant="default", text="volcano lava", k=5)] == before
    assert top_documents(backend.search_bm25(tenant="default", text="お寺", k=5)) == []  # CJK field now exists
