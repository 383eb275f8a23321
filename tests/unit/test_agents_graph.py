"""agents.graph.RagAgent over a real embedded index (MiniLM embeddings, BM25 + dense).

Most tests answer with the real SmolLM2-135M-Instruct (marked slow). Generation is kept to a few
tokens: the behaviours under test are which passages, prompt and route the graph uses, not the
model's wording. Citation mapping is the exception: SmolLM2-135M does not write `[n]` markers
within a few tokens, so those tests put a reader that cites at the model's edge (`CitingReader`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agents.graph import AgentQuery, RagAgent, mermaid
from agents.prompts import WEAK_PASSAGES
from indexing.backends import open_backend
from indexing.chunking import Chunker
from indexing.pipeline import IngestPipeline
from indexing.retriever import HybridRetriever
from indexing.types import SourceDocument
from models.embedder import TextEmbedder
from models.fetch import ensure_smollm2
from models.llm.base import ChatMessage, Generation, GenerationParams
from models.llm.transformers_engine import TransformersEngine

slow = pytest.mark.slow  # generates with SmolLM2

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


class CitingReader:
    """The model's edge for citation tests: answers with each `evidence` phrase, citing the number the
    prompt gave the passage that holds it, the way a model that follows the system prompt would."""

    name = "citing-reader"
    accepts_images = False

    def __init__(self, *evidence: str) -> None:
        self.evidence = evidence

    def _answer(self, messages: Sequence[ChatMessage]) -> str:
        numbered = re.findall(r"^\[(\d+)\] (.*)$", messages[-1].content, flags=re.MULTILINE)
        claims = [f"{phrase} [{n}]" for phrase in self.evidence for n, passage in numbered if phrase in passage]
        return "; ".join(claims) + "." if claims else "I don't know."

    def generate(self, messages: list[ChatMessage], params: GenerationParams | None = None, *,
                 adapter: str | None = None) -> Generation:
        text = self._answer(messages)
        return Generation(text=text, prompt_tokens=0, completion_tokens=len(text.split()), adapter=adapter,
                          finish_reason="stop")

    def stream(self, messages: list[ChatMessage], params: GenerationParams | None = None, *,
               adapter: str | None = None) -> Iterator[str]:
        yield from re.findall(r"\S+\s*", self._answer(messages))  # markers arrive split across pieces

    def load_adapter(self, name: str, path: Path) -> None:
        raise NotImplementedError

    def adapters(self) -> list[str]:
        return []


@pytest.fixture(scope="module")
def retriever(tmp_path_factory) -> Iterator[HybridRetriever]:
    embedder = TextEmbedder()
    backend = open_backend("embedded://", home=tmp_path_factory.mktemp("home"), dimension=embedder.dimension)
    IngestPipeline(Chunker(), embedder, backend).ingest_many(DOCS)
    yield HybridRetriever(embedder, backend)
    backend.close()


@pytest.fixture(scope="module")
def agent(retriever) -> RagAgent:
    return RagAgent(retriever, TransformersEngine(ensure_smollm2()))


def ask(agent: RagAgent, question: str, **options) -> object:
    return agent.answer(AgentQuery(question=question, max_new_tokens=SHORT, **options))


@slow
def test_relevant_passages_become_numbered_context(agent):
    result = ask(agent, "How long is the Ostra river?")
    assert result.route == "retrieve" and result.evidence == "found"
    assert result.hits[0].chunk.document_id == "river"
    assert "[1] The Ostra river: The Ostra river flows 612 kilometres" in result.prompt[-1].content


@slow
def test_irrelevant_hits_are_left_out_of_the_context(agent):
    result = ask(agent, "How long is the Ostra river?")
    assert [hit.chunk.document_id for hit in result.hits] == ["river"]
    assert len(result.grades) == 3 and result.grades[0] == 1.0


@slow
def test_retrieval_is_scoped_to_the_tenant(agent):
    result = ask(agent, "How long is the Ostra river?", tenant="globex")
    assert [hit.chunk.document_id for hit in result.hits] == ["other-tenant"]


@slow
def test_a_restricted_document_is_retrieved_only_for_a_principal_on_its_access_list(agent):
    question = "What code opens the Veltrin vault?"
    assert "vault" in [hit.chunk.document_id for hit in ask(agent, question, principals=["alice"]).hits]
    for outsider in ([], ["bob"]):
        assert "vault" not in [hit.chunk.document_id for hit in ask(agent, question, principals=outsider).hits]


@slow
def test_retrieval_false_skips_the_search(agent):
    result = ask(agent, "How long is the Ostra river?", retrieval=False)
    assert (result.route, result.hits, result.queries, result.evidence) == ("direct", [], [], "not_searched")
    assert result.prompt[-1].content == "How long is the Ostra river?"


@slow
def test_without_evidence_the_prompt_says_so_and_the_models_answer_is_kept(agent):
    result = ask(agent, "What is the capital of the planet Zorblax?")
    assert result.evidence == "insufficient" and len(result.hits) == 3  # shown, with a note, for the model to judge
    assert WEAK_PASSAGES in result.prompt[-1].content
    assert result.answer and result.usage["completion_tokens"] >= 1  # the model's own words, never a canned refusal


@slow
def test_a_failed_search_is_retried_once_with_the_subject_of_the_earlier_turn(agent):
    history = [{"role": "user", "content": "Where is the Veltrin Observatory?"},
               {"role": "assistant", "content": "On Mount Caldera [1]."}]
    result = ask(agent, "How high is it?", history=history)
    assert result.queries == ["How high is it?", "high veltrin observatory"]
    assert result.hits and result.hits[0].chunk.document_id == "observatory"
    assert result.prompt[1].content == "Where is the Veltrin Observatory?"


@slow
def test_a_search_with_nothing_new_to_try_is_not_repeated(agent):
    assert ask(agent, "What is the capital of the planet Zorblax?").queries == ["What is the capital of the planet Zorblax?"]


@slow
def test_the_same_question_gets_the_same_prompt(agent):
    first, second = ask(agent, "How long is the Ostra river?"), ask(agent, "How long is the Ostra river?")
    assert first.prompt == second.prompt and first.answer == second.answer


@slow
def test_streaming_delivers_the_answer_in_pieces(agent):
    pieces: list[str] = []
    result = agent.answer(AgentQuery(question="How long is the Ostra river?", max_new_tokens=SHORT), on_delta=pieces.append)
    assert len(pieces) > 1 and "".join(pieces).strip() == result.answer


@slow
def test_should_stop_ends_generation_at_the_next_piece(agent):
    pieces: list[str] = []
    agent.answer(AgentQuery(question="How long is the Ostra river?", max_new_tokens=SHORT), on_delta=pieces.append,
                 should_stop=lambda: len(pieces) >= 2)
    assert len(pieces) == 2


@slow
def test_timings_cover_every_step_that_ran(agent):
    assert {"retrieval", "grading", "generation"} <= set(ask(agent, "How long is the Ostra river?").timings_ms)


def test_the_documented_graph_is_the_current_graph(retriever):
    drawn = RagAgent(retriever, CitingReader()).mermaid()
    assert drawn == mermaid()
    assert drawn.strip() in (Path(__file__).resolve().parents[2] / "docs" / "agent-graph.md").read_text()


@pytest.mark.parametrize("streamed", [False, True])
def test_each_citation_names_the_chunk_that_holds_the_cited_evidence(retriever, streamed):
    """Two relevant passages; the evidence cited first sits in the second one, so a numbering or
    ordering slip between prompt and citations names the wrong chunk."""
    agent = RagAgent(retriever, CitingReader("4,200 metres", "7734"))
    query = AgentQuery(question="How high is the Veltrin Observatory and what code opens the Veltrin vault?",
                       principals=["alice"], max_new_tokens=SHORT)
    result = agent.answer(query, on_delta=[].append) if streamed else agent.answer(query)
    assert result.evidence == "found" and [hit.chunk.document_id for hit in result.hits] == ["vault", "observatory"]
    assert result.answer == "4,200 metres [2]; 7734 [1]."
    cited = {hit.chunk.id: hit.chunk for hit in result.hits}
    assert [cited[chunk_id].document_id for chunk_id in result.cited] == ["observatory", "vault"]
    assert "4,200 metres" in cited[result.cited[0]].text and "7734" in cited[result.cited[1]].text


def test_an_answer_without_evidence_in_its_context_cites_nothing(retriever):
    result = RagAgent(retriever, CitingReader("7734")).answer(AgentQuery(question="What code opens the Veltrin vault?"))
    assert "vault" not in [hit.chunk.document_id for hit in result.hits]  # restricted: not in this reader's context
    assert (result.answer, result.cited) == ("I don't know.", [])


class ImageSeeingReader(CitingReader):
    """A reader that records the images each generation was shown."""

    def __init__(self, accepts_images: bool) -> None:
        super().__init__()
        self.accepts_images = accepts_images
        self.shown: list[list[str]] = []

    def generate(self, messages: list[ChatMessage], params: GenerationParams | None = None, *,
                 adapter: str | None = None) -> Generation:
        self.shown.append(list(params.images) if params else [])
        return super().generate(messages, params, adapter=adapter)


@pytest.mark.parametrize("vision", [True, False])
def test_a_vision_engine_is_shown_the_questions_images_and_a_text_only_one_never_receives_them(retriever, vision):
    image = "data:image/png;base64,iVBORw0KGgo="
    reader = ImageSeeingReader(accepts_images=vision)
    RagAgent(retriever, reader).answer(AgentQuery(question="How long is the Ostra river?", images=[image]))
    assert reader.shown == [[image] if vision else []]
