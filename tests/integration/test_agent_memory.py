"""Multi-turn memory through a LangGraph checkpointer, on a SQLite file and on PostgreSQL.

A conversation survives a worker restart: a NEW `RagAgent` (fresh engine state, fresh
checkpointer connection) opened on the same database answers a follow-up that carries only the
new message with the earlier turn in its prompt. Real SmolLM2-135M and a real embedded index;
the assertions are on the prompt and stored turns the graph used, not on the model's wording.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agents.graph import AgentQuery, RagAgent
from agents.memory import close_checkpointer, open_checkpointer
from indexing.backends import open_backend
from indexing.chunking import Chunker
from indexing.pipeline import IngestPipeline
from indexing.retriever import HybridRetriever
from indexing.types import SourceDocument
from models.embedder import TextEmbedder
from models.fetch import ensure_smollm2
from models.llm.transformers_engine import TransformersEngine
from schemas.events import principals_fingerprint

pytestmark = pytest.mark.slow

DOCS = [
    SourceDocument(id="observatory", title="The Veltrin Observatory", text="The Veltrin Observatory sits on Mount Caldera at "
                   "4,200 metres. It was opened in 1987 and houses a 3.5 metre reflecting telescope."),
    SourceDocument(id="bakery", title="Harbor Street Bakery", text="Harbor Street Bakery is famous for its rye sourdough."),
]
FIRST, FOLLOW_UP = "Where is the Veltrin Observatory?", "How high is it?"


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Iterator[tuple[HybridRetriever, TransformersEngine]]:
    embedder = TextEmbedder()
    backend = open_backend("embedded://", home=tmp_path_factory.mktemp("home"), dimension=embedder.dimension)
    IngestPipeline(Chunker(), embedder, backend).ingest_many(DOCS)
    yield HybridRetriever(embedder, backend), TransformersEngine(ensure_smollm2())
    backend.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agent-memory.db'}"


def worker(parts, url: str) -> Callable[[], RagAgent]:
    """Start 'a worker process': a new agent with its own checkpointer connection to `url`."""
    started: list[RagAgent] = []

    def start() -> RagAgent:
        for agent in started:  # the previous worker is gone
            close_checkpointer(agent.checkpointer)
        retriever, engine = parts
        started.append(RagAgent(retriever, engine, checkpointer=open_checkpointer(url)))
        return started[-1]

    return start


def ask(agent: RagAgent, question: str, conversation: str, turn: str | None = None):
    return agent.answer(AgentQuery(question=question, conversation_id=conversation, turn_id=turn, max_new_tokens=16))


def check_follow_up_survives_a_restart(parts, url: str) -> None:
    start, conversation = worker(parts, url), uuid.uuid4().hex
    first = ask(start(), FIRST, conversation)
    follow_up = ask(start(), FOLLOW_UP, conversation)  # a new worker; the request carries only the new message
    assert follow_up.history_turns == 1
    assert [(m.role, m.content) for m in follow_up.prompt[1:3]] == [("user", FIRST), ("assistant", first.answer)]
    assert follow_up.hits and follow_up.hits[0].chunk.document_id == "observatory"  # the rewrite used turn 1's subject


def test_a_follow_up_sees_the_earlier_turn_after_a_restart_on_sqlite(parts, sqlite_url):
    check_follow_up_survives_a_restart(parts, sqlite_url)


@pytest.mark.postgres
def test_a_follow_up_sees_the_earlier_turn_after_a_restart_on_postgres(parts, postgres_url):
    check_follow_up_survives_a_restart(parts, postgres_url)


def test_conversations_do_not_share_memory(parts, sqlite_url):
    agent = worker(parts, sqlite_url)()
    ask(agent, FIRST, "conversation-a")
    other = ask(agent, FOLLOW_UP, "conversation-b")
    assert other.history_turns == 0 and [m.role for m in other.prompt] == ["system", "user"]


def test_a_redelivered_turn_is_stored_once_and_not_shown_to_itself(parts, sqlite_url):
    agent = worker(parts, sqlite_url)()
    ask(agent, FIRST, "c1", turn="task-1")
    again = ask(agent, FIRST, "c1", turn="task-1")  # at-least-once delivery ran the same task twice
    assert again.history_turns == 0
    assert [t["id"] for t in agent.conversation("c1")] == ["task-1"]


def test_history_sent_with_the_request_takes_precedence_over_memory(parts, sqlite_url):
    agent = worker(parts, sqlite_url)()
    ask(agent, FIRST, "c2")
    sent = [{"role": "user", "content": "Tell me about Harbor Street Bakery"}, {"role": "assistant", "content": "It bakes rye."}]
    result = agent.answer(AgentQuery(question="When was its oven built?", history=sent, conversation_id="c2", max_new_tokens=8))
    assert [m.content for m in result.prompt[1:3]] == [sent[0]["content"], sent[1]["content"]]
    assert len(agent.conversation("c2")) == 2


def test_a_cancelled_answer_is_not_remembered(parts, sqlite_url):
    agent = worker(parts, sqlite_url)()
    agent.answer(AgentQuery(question=FIRST, conversation_id="c3", max_new_tokens=16), on_delta=lambda _: None,
                 should_stop=lambda: True)
    assert agent.conversation("c3") == []


def test_without_a_conversation_id_nothing_is_stored(parts, sqlite_url):
    agent = worker(parts, sqlite_url)()
    result = agent.answer(AgentQuery(question=FIRST, max_new_tokens=8))
    assert result.history_turns == 0 and agent.conversation("") == []


def test_the_same_conversation_id_in_another_tenant_is_another_conversation(parts, sqlite_url):
    agent = worker(parts, sqlite_url)()
    ask(agent, FIRST, "shared-id")
    other = agent.answer(AgentQuery(question=FOLLOW_UP, conversation_id="shared-id", tenant="globex", max_new_tokens=8))
    assert other.history_turns == 0
    assert [t["question"] for t in agent.conversation("shared-id", tenant="globex")] == [FOLLOW_UP]


def test_a_conversation_held_by_principals_is_private_to_them(parts, sqlite_url):
    agent = worker(parts, sqlite_url)()
    agent.answer(AgentQuery(question=FIRST, conversation_id="held", principals=["group:hr", "alice"], max_new_tokens=8))
    same = agent.answer(AgentQuery(question=FOLLOW_UP, conversation_id="held", principals=["alice", "group:hr"], max_new_tokens=8))
    assert same.history_turns == 1  # the same principals, in any order, continue it
    for outsider in ([], ["alice"]):
        other = agent.answer(AgentQuery(question=FOLLOW_UP, conversation_id="held", principals=outsider, max_new_tokens=8))
        assert other.history_turns == 0
    assert len(agent.conversation("held", principals=["alice", "group:hr"])) == 2


def test_ids_with_slashes_cannot_open_another_principals_or_tenants_memory(parts, sqlite_url):
    """Ids may contain `/`: tuples that a `/`-joined key would have merged are still separate conversations."""
    agent = worker(parts, sqlite_url)()
    agent.answer(AgentQuery(question=FIRST, conversation_id="held", principals=["alice"], max_new_tokens=8))
    agent.answer(AgentQuery(question=FIRST, tenant="acme", conversation_id="x/y", max_new_tokens=8))
    collisions = [AgentQuery(question=FOLLOW_UP, conversation_id=f"held/{principals_fingerprint(['alice'])}", max_new_tokens=8),
                  AgentQuery(question=FOLLOW_UP, tenant="acme/x", conversation_id="y", max_new_tokens=8)]
    for probe in collisions:
        assert agent.answer(probe).history_turns == 0, probe
    assert [t["question"] for t in agent.conversation("held", principals=["alice"])] == [FIRST]
    assert [t["question"] for t in agent.conversation("x/y", tenant="acme")] == [FIRST]
