"""agents.graph.RagAgent with the real models: SmolLM2-135M-Instruct answering over a real embedded
index (MiniLM embeddings, BM25 + dense). Generation is kept to a few tokens: the behaviours under
test are which passages, prompt and route the graph uses, not the model's wording."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agents.graph import AgentQuery, RagAgent, mermaid  # noqa: E402
from agents.prompts import WEAK_PASSAGES  # noqa: E402
from indexing.backends.base import open_backend  # noqa: E402
from indexing.chunking import Chunker  # noqa: E402
from indexing.pipeline import IngestPipeline  # noqa: E402
from indexing.retriever import HybridRetriever  # noqa: E402
from indexing.types import SourceDocument  # noqa: E402
from models.embedder import TextEmbedder  # noqa: E402
from models.fetch import ensure_smollm2  # noqa: E402
from models.llm.transformers_engine import TransformersEngine  # noqa: E402

pytestmark = pytest.mark.slow

DOCS = [
    SourceDocument(id="observatory", title="The Veltrin Observatory", text="The Veltrin Observatory sits on Mount Caldera at "
                   "4,200 metres. It was opened in 1987 and houses a 3.5 metre reflecting telescope."),
    SourceDocument(id="bakery", title="Harbor Street Bakery", text="Harbor Street Bakery is famous for its rye sourdough, baked "
                   "every morning in a wood-fired oven built by hand in 1952."),
    SourceDocument(id="river", title="The Ostra river", text="The Ostra river flows 612 kilometres from the Kessel glacier to the "
                   "Northern Sea."),
    SourceDocument(id="other-tenant", tenant="globex", title="The Ostra river", text="The Ostra river is 3 kilometres long."),
    SourceDocument(id="vault", title="The Veltrin vault", text="The Veltrin vault opens with the code 7734 at midnight.",
                   access=["alice"]),
]
SHORT = 16


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> RagAgent:
    embedder = TextEmbedder()
    backend = open_backend("embedded://", home=tmp_path_factory.mktemp("home"), dimension=embedder.dimension)
    IngestPipeline(Chunker(), embedder, backend).ingest_many(DOCS)
    yield RagAgent(HybridRetriever(embedder, backend), TransformersEngine(ensure_smollm2()))
    backend.close()


def ask(agent: RagAgent, question: str, **options) -> object:
    return agent.answer(AgentQuery(question=question, max_new_tokens=SHORT, **options))


def test_relevant_passages_become_numbered_context_and_citations_map_to_them(agent):
    result = ask(agent, "How long is the Ostra river?")
    assert result.route == "retrieve" and result.evidence == "found"
    assert result.hits[0].chunk.document_id == "river"
    assert "[1] The Ostra river: The Ostra river flows 612 kilometres" in result.prompt[-1].content
    assert set(result.cited) <= {hit.chunk.id for hit in result.hits}


def test_irrelevant_hits_are_left_out_of_the_context(agent):
    result = ask(agent, "How long is the Ostra river?")
    assert [hit.chunk.document_id for hit in result.hits] == ["river"]
    assert len(result.grades) == 3 and result.grades[0] == 1.0


def test_retrieval_is_scoped_to_the_tenant(agent):
    result = ask(agent, "How long is the Ostra river?", tenant="globex")
    assert [hit.chunk.document_id for hit in result.hits] == ["other-tenant"]


def test_a_restricted_document_is_retrieved_only_for_a_principal_on_its_access_list(agent):
    question = "What code opens the Veltrin vault?"
    assert "vault" in [hit.chunk.document_id for hit in ask(agent, question, principals=["alice"]).hits]
    for outsider in ([], ["bob"]):
        assert "vault" not in [hit.chunk.document_id for hit in ask(agent, question, principals=outsider).hits]


def test_retrieval_false_skips_the_search(agent):
    result = ask(agent, "How long is the Ostra river?", retrieval=False)
    assert (result.route, result.hits, result.queries, result.evidence) == ("direct", [], [], "not_searched")
    assert result.prompt[-1].content == "How long is the Ostra river?"


def test_without_evidence_the_prompt_says_so_and_the_models_answer_is_kept(agent):
    result = ask(agent, "What is the capital of the planet Zorblax?")
    assert result.evidence == "insufficient" and len(result.hits) == 3  # shown, with a note, for the model to judge
    assert WEAK_PASSAGES in result.prompt[-1].content
    assert result.answer and result.usage["completion_tokens"] >= 1  # the model's own words, never a canned refusal


def test_a_failed_search_is_retried_once_with_the_subject_of_the_earlier_turn(agent):
    history = [{"role": "user", "content": "Where is the Veltrin Observatory?"},
               {"role": "assistant", "content": "On Mount Caldera [1]."}]
    result = ask(agent, "How high is it?", history=history)
    assert result.queries == ["How high is it?", "high veltrin observatory"]
    assert result.hits and result.hits[0].chunk.document_id == "observatory"
    assert result.prompt[1].content == "Where is the Veltrin Observatory?"


def test_a_search_with_nothing_new_to_try_is_not_repeated(agent):
    assert ask(agent, "What is the capital of the planet Zorblax?").queries == ["What is the capital of the planet Zorblax?"]


def test_the_same_question_gets_the_same_prompt(agent):
    first, second = ask(agent, "How long is the Ostra river?"), ask(agent, "How long is the Ostra river?")
    assert first.prompt == second.prompt and first.answer == second.answer


def test_streaming_delivers_the_answer_in_pieces(agent):
    pieces: list[str] = []
    result = agent.answer(AgentQuery(question="How long is the Ostra river?", max_new_tokens=SHORT), on_delta=pieces.append)
    assert len(pieces) > 1 and "".join(pieces).strip() == result.answer


def test_should_stop_ends_generation_at_the_next_piece(agent):
    pieces: list[str] = []
    agent.answer(AgentQuery(question="How long is the Ostra river?", max_new_tokens=SHORT), on_delta=pieces.append,
                 should_stop=lambda: len(pieces) >= 2)
    assert len(pieces) == 2


def test_timings_cover_every_step_that_ran(agent):
    assert {"retrieval", "grading", "generation"} <= set(ask(agent, "How long is the Ostra river?").timings_ms)


def test_the_documented_graph_is_the_current_graph(agent):
    drawn = agent.mermaid()
    assert drawn == mermaid()
    assert drawn.strip() in (Path(__file__).resolve().parents[2] / "docs" / "agent-graph.md").read_text()


def test_a_citation_marker_points_to_the_chunk_that_contains_the_cited_text(agent):
    from agents.citations import cited_ids

    result = ask(agent, "How long is the Ostra river?")
    by_id = {hit.chunk.id: hit.chunk for hit in result.hits}
    numbered = [line for line in result.prompt[-1].content.splitlines() if line.startswith("[")]
    # What a correct answer would say, citing the passage the prompt numbered [1]:
    (chunk_id,) = cited_ids("It flows 612 kilometres [1].", [hit.chunk.id for hit in result.hits])
    assert "612 kilometres" in by_id[chunk_id].text and numbered[0].startswith("[1]") and by_id[chunk_id].text in numbered[0]
    for chunk_id in result.cited:  # and whatever the model itself cited exists in its context
        assert by_id[chunk_id].text in result.prompt[-1].content
