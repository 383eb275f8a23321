"""The answering agent as a LangGraph state machine: route → retrieve → generate.

Nodes are small functions of a typed state, so the graph can be drawn (`draw_mermaid`) and each
step tested alone. The agent never touches a broker: workers call `RagAgent.answer` and publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

from agents.prompts import build_prompt
from indexing.retriever import HybridRetriever
from indexing.types import SearchHit
from models.llm.base import ChatMessage, GenerationParams, LLMEngine


class AgentQuery(BaseModel):
    question: str = Field(min_length=1)
    history: list[ChatMessage] = Field(default_factory=list)
    tenant: str = "default"
    retrieval: bool = True
    k: int = 4
    adapter: str | None = None
    max_new_tokens: int = 96


class AgentAnswer(BaseModel):
    answer: str
    hits: list[SearchHit]
    prompt: list[ChatMessage]
    usage: dict[str, int]
    timings_ms: dict[str, float]


class AgentState(TypedDict, total=False):
    query: AgentQuery
    hits: list[SearchHit]
    prompt: list[ChatMessage]
    answer: str
    usage: dict[str, int]
    timings_ms: dict[str, float]


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


class RagAgent:
    """Answers one question with retrieved, cited context and the requested LoRA adapter."""

    def __init__(self, retriever: HybridRetriever, engine: LLMEngine) -> None:
        self.retriever = retriever
        self.engine = engine
        self.graph = self._build()

    def _route(self, state: AgentState) -> Literal["retrieve", "generate"]:
        return "retrieve" if state["query"].retrieval else "generate"

    def _retrieve(self, state: AgentState) -> dict[str, Any]:
        query, start = state["query"], time.perf_counter()
        hits = self.retriever.retrieve(query.question, tenant=query.tenant, k=query.k)
        return {"hits": hits, "timings_ms": {**state.get("timings_ms", {}), "retrieval": _elapsed_ms(start)}}

    def _generate(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        query, start = state["query"], time.perf_counter()
        prompt = build_prompt(query.question, state.get("hits", []), query.history)
        params = GenerationParams(max_new_tokens=query.max_new_tokens)
        on_delta: Callable[[str], None] | None = config.get("configurable", {}).get("on_delta")
        should_stop: Callable[[], bool] = config.get("configurable", {}).get("should_stop") or (lambda: False)
        if on_delta is None:
            generation = self.engine.generate(prompt, params, adapter=query.adapter)
            text, usage = generation.text, {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens}
        else:
            pieces: list[str] = []
            deltas = self.engine.stream(prompt, params, adapter=query.adapter)
            try:
                for delta in deltas:
                    pieces.append(delta)
                    on_delta(delta)
                    if should_stop():  # cancelled: stop decoding now rather than finishing the answer
                        break
            finally:
                deltas.close()  # type: ignore[attr-defined]
            text, usage = "".join(pieces), {"stream_deltas": len(pieces)}
        return {
            "prompt": prompt,
            "answer": text.strip(),
            "usage": usage,
            "timings_ms": {**state.get("timings_ms", {}), "generation": _elapsed_ms(start)},
        }

    def _build(self) -> Any:
        graph = StateGraph(AgentState)
        graph.add_node("retrieve", self._retrieve)
        graph.add_node("generate", self._generate)
        graph.add_conditional_edges(START, self._route, {"retrieve": "retrieve", "generate": "generate"})
        graph.add_edge("retrieve", "generate")
        graph.add_edge("generate", END)
        return graph.compile()

    def answer(self, query: AgentQuery, *, on_delta: Callable[[str], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> AgentAnswer:
        """Run the graph; with `on_delta` the answer is streamed piece by piece as it is generated."""
        config: RunnableConfig = {"configurable": {"on_delta": on_delta, "should_stop": should_stop}}
        state: AgentState = self.graph.invoke({"query": query, "hits": [], "timings_ms": {}}, config)
        return AgentAnswer(answer=state["answer"], hits=state.get("hits", []), prompt=state["prompt"],
                           usage=state["usage"], timings_ms=state["timings_ms"])

    def mermaid(self) -> str:
        return self.graph.get_graph().draw_mermaid()
