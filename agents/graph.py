"""The answering agent as a LangGraph state machine with memory.

    recall → route ─┬─ retrieve → grade ─┬─ generate → remember
                    │      ▲             │
                    │      └─ rewrite ◄──┘ (nothing relevant, at most `max_rewrites` times)
                    ├─ tool ────────────────► generate
                    └─ (direct) ────────────► generate

Nodes are short functions of a typed state (`AgentState`), so the graph can be drawn
(`mermaid()`) and each step tested alone. Routing, grading and rewriting are deterministic rules
(see `agents/routing.py`, `agents/grading.py`): with a 135M model on CPU the LLM adds seconds and
little judgment there. The model decides only what it is good at: the answer, its `[n]`
citations, and whether the passages shown are enough to answer; the agent never replaces that
answer with a canned refusal, so feedback training can teach it answers.

The final prompt is a pure function of the question, the passages and the earlier turns, so the
same question in the same situation gets byte-identical prompts: training data recorded at serve
time matches what the adapter is asked later.

With a checkpointer, a conversation's turns are saved under its `conversation_id` (LangGraph
`thread_id`); any process with the same database continues it. The agent never touches a broker:
workers call `RagAgent.answer` and publish.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agents import grading
from agents.citations import cited_ids
from agents.memory import Turn, merge_turns, thread_id
from agents.prompts import build_prompt
from agents.routing import RETRIEVAL, route
from agents.tools.base import Tool
from agents.tools.retrieval import RetrievalTool
from agents.types import AgentAnswer, AgentQuery, Evidence
from indexing.retriever import HybridRetriever
from indexing.types import SearchHit
from models.llm.base import ChatMessage, GenerationParams, LLMEngine

__all__ = ["AgentAnswer", "AgentQuery", "AgentState", "RagAgent", "RunContext", "mermaid"]

class AgentState(TypedDict, total=False):
    query: AgentQuery
    turn_id: str
    history: list[ChatMessage]  # earlier turns shown to the model
    route: str
    tool: str | None
    queries: list[str]
    candidates: list[SearchHit]  # the last search's hits, before grading
    grades: list[float]
    next_query: str | None  # set by grading when a rewritten search is worth trying
    hits: list[SearchHit]  # context passages given to the model
    evidence: Evidence
    tool_text: str
    tool_answer: str
    prompt: list[ChatMessage]
    answer: str
    cited: list[str]
    usage: dict[str, int]
    timings_ms: dict[str, float]
    stopped: bool
    turns: Annotated[list[Turn], merge_turns]  # the conversation so far; the only channel that outlives a run


@dataclass
class RunContext:
    """Per-run callables, passed as LangGraph runtime context (never checkpointed)."""

    on_delta: Callable[[str], None] | None = None
    should_stop: Callable[[], bool] | None = None


AgentGraph = StateGraph[AgentState, RunContext, AgentState, AgentState]


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _timed(state: AgentState, step: str, start: float) -> dict[str, float]:
    return _add_time(state.get("timings_ms", {}), step, start)


def _add_time(timings: dict[str, float], step: str, start: float) -> dict[str, float]:
    """A copy of `timings` with the time since `start` added to `step` (a step may run more than once)."""
    timings = dict(timings)
    timings[step] = round(timings.get(step, 0.0) + _elapsed_ms(start), 2)
    return timings


class RagAgent:
    """Answers one question with graded, cited context, the requested LoRA adapter and conversation memory.

        >>> agent = RagAgent(retriever, engine, checkpointer=open_checkpointer("sqlite:///memory.db"))  # doctest: +SKIP
        >>> agent.answer(AgentQuery(question="How long is the Ostra river?", conversation_id="c1")).cited  # doctest: +SKIP
    """

    def __init__(self, retriever: HybridRetriever, engine: LLMEngine, *, tools: Iterable[Tool] = (),
                 checkpointer: BaseCheckpointSaver | None = None, max_rewrites: int = 1,
                 relevance_threshold: float = grading.RELEVANCE_THRESHOLD, memory_turns: int = 3) -> None:
        self.retriever = retriever
        self.engine = engine
        self.tools: dict[str, Tool] = {RETRIEVAL: RetrievalTool(retriever)}
        for tool in tools:
            self.tools[tool.name] = tool
        self.checkpointer = checkpointer
        self.max_rewrites = max_rewrites
        self.relevance_threshold = relevance_threshold
        self.memory_turns = memory_turns
        builder = self._builder()
        self.graph = builder.compile()  # no memory: requests without a conversation id
        self.memory_graph = builder.compile(checkpointer=checkpointer) if checkpointer is not None else None

    # -- nodes -------------------------------------------------------------------------------------

    def _recall(self, state: AgentState) -> dict[str, Any]:
        """Earlier turns for the prompt: those sent with the request, else the stored ones."""
        query = state["query"]
        if query.history:
            return {"history": list(query.history)}
        earlier = [t for t in state.get("turns", []) if t["id"] != state["turn_id"]][-self.memory_turns:] if self.memory_turns else []
        history = [m for t in earlier for m in (ChatMessage(role="user", content=t["question"]),
                                                ChatMessage(role="assistant", content=t["answer"]))]
        return {"history": history}

    def _route(self, state: AgentState) -> dict[str, Any]:
        decision = route(state["query"], self.tools)
        return {"route": decision.node, "tool": decision.tool}

    def _retrieve(self, state: AgentState) -> dict[str, Any]:
        query, start = state["query"], time.perf_counter()
        queries = state.get("queries") or [query.question]
        output = self.tools[RETRIEVAL](query=queries[-1], tenant=query.tenant, principals=query.principals, k=query.k)
        return {"queries": queries, "candidates": output.hits, "timings_ms": _timed(state, "retrieval", start)}

    def _grade(self, state: AgentState) -> dict[str, Any]:
        start = time.perf_counter()
        candidates = state.get("candidates", [])
        grades = grading.grade(state["queries"][-1], candidates)  # the query searched, which a rewrite may have widened
        relevant = [hit for hit, g in zip(candidates, grades) if g >= self.relevance_threshold]
        timings = _timed(state, "grading", start)
        next_query = None
        if not relevant:
            start = time.perf_counter()
            next_query = self._next_query(state)
            if next_query is not None:  # timings cover the steps that ran; a rewrite not taken did not
                timings = _add_time(timings, "rewrite", start)
        # Nothing relevant: the passages stay in the prompt with a note and the model judges them (no hard gate).
        return {"grades": grades, "hits": relevant or candidates, "evidence": "found" if relevant else "insufficient",
                "next_query": next_query, "timings_ms": timings}

    def _next_query(self, state: AgentState) -> str | None:
        """The rewritten search to try after a failed one: None once `max_rewrites` retries are spent or
        when the rewrite would search for terms already tried."""
        queries = state.get("queries", [])
        if len(queries) > self.max_rewrites:
            return None
        earlier = [m.content for m in state.get("history", []) if m.role == "user"]
        rewritten = grading.rewrite(state["query"].question, earlier)
        tried = {" ".join(sorted(grading.content_terms(q))) for q in queries}
        return None if not rewritten or " ".join(sorted(grading.content_terms(rewritten))) in tried else rewritten

    def _rewrite(self, state: AgentState) -> dict[str, Any]:
        return {"queries": [*state.get("queries", []), state["next_query"]], "next_query": None}

    def _run_tool(self, state: AgentState) -> dict[str, Any]:
        query, start, name = state["query"], time.perf_counter(), state["tool"] or ""
        output = self.tools[name](query=query.question, tenant=query.tenant, principals=query.principals, k=query.k, images=query.images)
        return {"hits": output.hits, "tool_text": output.text, "tool_answer": output.answer, "timings_ms": _timed(state, f"tool.{name}", start)}

    def _generate(self, state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        query, start = state["query"], time.perf_counter()
        hits = state.get("hits", [])
        prompt = build_prompt(query.question, hits, state.get("history", []),
                              evidence=state.get("evidence", "not_searched"), tool_text=state.get("tool_text", ""))
        context = runtime.context or RunContext()
        if state.get("tool_answer"):  # the tool's answer is final: nothing for the model to add
            if context.on_delta is not None:
                context.on_delta(state["tool_answer"])
            return {"prompt": prompt, "answer": state["tool_answer"], "cited": [], "usage": {}, "stopped": False,
                    "timings_ms": _timed(state, "generation", start)}
        # A vision engine is shown the question's images; a text-only one never receives them (they served retrieval).
        params = GenerationParams(max_new_tokens=query.max_new_tokens, images=query.images if self.engine.accepts_images else [])
        should_stop = context.should_stop or (lambda: False)
        stopped = False
        if context.on_delta is None:
            generation = self.engine.generate(prompt, params, adapter=query.adapter)
            text, usage = generation.text, {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens}
        else:
            pieces: list[str] = []
            deltas = self.engine.stream(prompt, params, adapter=query.adapter)
            try:
                for delta in deltas:
                    pieces.append(delta)
                    context.on_delta(delta)
                    if should_stop():  # cancelled: stop decoding now rather than finishing the answer
                        stopped = True
                        break
            finally:
                deltas.close()  # type: ignore[attr-defined]
            text, usage = "".join(pieces), {"stream_deltas": len(pieces)}
        answer = text.strip()
        return {"prompt": prompt, "answer": answer, "cited": cited_ids(answer, [h.chunk.id for h in hits]),
                "usage": usage, "stopped": stopped, "timings_ms": _timed(state, "generation", start)}

    def _remember(self, state: AgentState) -> dict[str, Any]:
        """Record the exchange; a cancelled answer is not part of the conversation."""
        if state.get("stopped"):
            return {}
        return {"turns": [Turn(id=state["turn_id"], question=state["query"].question, answer=state["answer"])]}

    # -- wiring ------------------------------------------------------------------------------------

    def _builder(self) -> AgentGraph:
        steps: dict[str, Callable[..., dict[str, Any]]] = {"recall": self._recall, "route": self._route, "retrieve": self._retrieve, "grade": self._grade,
                 "rewrite": self._rewrite, "tool": self._run_tool, "generate": self._generate, "remember": self._remember}
        return _wire(steps)

    # -- entry points ------------------------------------------------------------------------------

    def answer(self, query: AgentQuery, *, on_delta: Callable[[str], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> AgentAnswer:
        """Run the graph; with `on_delta` the answer is streamed piece by piece as it is generated."""
        turn_id = query.turn_id or uuid.uuid4().hex
        # Every per-run channel is reset here: with memory, the thread's last checkpoint holds the previous run's values.
        fresh: AgentState = {"query": query, "turn_id": turn_id, "history": [], "route": "", "tool": None, "queries": [],
                             "candidates": [], "grades": [], "hits": [], "evidence": "not_searched", "tool_text": "", "tool_answer": "",
                             "next_query": None, "cited": [], "stopped": False, "timings_ms": {}}
        context = RunContext(on_delta=on_delta, should_stop=should_stop)
        if query.conversation_id is not None and self.memory_graph is not None:
            config: RunnableConfig = {"configurable": {"thread_id": thread_id(query.tenant, query.conversation_id, query.principals)}}
            # One checkpoint write per turn (at the end) instead of one per node.
            state = self.memory_graph.invoke(fresh, config, context=context, durability="exit")
        else:
            state = self.graph.invoke(fresh, context=context)
        return AgentAnswer(answer=state["answer"], hits=state.get("hits", []), prompt=state["prompt"], usage=state["usage"],
                           timings_ms=state["timings_ms"], cited=state.get("cited", []), route=state["route"],
                           tool=state.get("tool"), queries=state.get("queries", []), grades=state.get("grades", []),
                           evidence=state.get("evidence", "not_searched"), history_turns=len(state.get("history", [])) // 2)

    def conversation(self, conversation_id: str, tenant: str = "default", principals: Sequence[str] = ()) -> list[Turn]:
        """The stored turns of a conversation (empty without a checkpointer or for an unknown id)."""
        if self.memory_graph is None:
            return []
        snapshot = self.memory_graph.get_state({"configurable": {"thread_id": thread_id(tenant, conversation_id, principals)}})
        return list(snapshot.values.get("turns", []))

    def mermaid(self) -> str:
        return self.graph.get_graph().draw_mermaid()


STEPS = ("recall", "route", "retrieve", "grade", "rewrite", "tool", "generate", "remember")


def _after_route(state: AgentState) -> str:
    return state["route"]


def _after_grade(state: AgentState) -> str:
    """Retry with a rewritten query only when grading proposed one (see `RagAgent._next_query`)."""
    return "rewrite" if state.get("next_query") else "generate"


def _wire(steps: Mapping[str, Callable[..., dict[str, Any]]]) -> AgentGraph:
    """The agent's nodes and edges; `steps` maps each name of `STEPS` to its node function."""
    graph = StateGraph(AgentState, context_schema=RunContext)
    for name in STEPS:
        graph.add_node(name, steps[name])
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "route")
    graph.add_conditional_edges("route", _after_route, {"retrieve": "retrieve", "tool": "tool", "direct": "generate"})
    graph.add_edge("retrieve", "grade")
    graph.add_conditional_edges("grade", _after_grade, {"rewrite": "rewrite", "generate": "generate"})
    graph.add_edge("rewrite", "retrieve")
    graph.add_edge("tool", "generate")
    graph.add_edge("generate", "remember")
    graph.add_edge("remember", END)
    return graph


def _not_drawn(state: AgentState) -> dict[str, Any]:
    raise AssertionError("a graph built for drawing is never run")


def mermaid() -> str:
    """The graph in Mermaid syntax (the README embeds it from docs/agent-graph.md). Drawing needs only
    the wiring, so the nodes are placeholders and no retriever or model is loaded."""
    return _wire(dict.fromkeys(STEPS, _not_drawn)).compile().get_graph().draw_mermaid()
