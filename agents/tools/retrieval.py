"""Retrieval as a tool: hybrid search over one tenant's chunks, the agent's default source of evidence.

    >>> tool = RetrievalTool(HybridRetriever(TextEmbedder(), backend))          # doctest: +SKIP
    >>> tool(query="How long is the Ostra river?", tenant="acme", k=4).hits     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from agents.tools.base import Tool, ToolInput, ToolOutput
from indexing.retriever import HybridRetriever


class RetrievalInput(ToolInput):
    k: int = Field(4, ge=1, le=50)


class RetrievalOutput(ToolOutput):
    """`hits` best first; they become the numbered context passages `[1]`, `[2]`, …"""


class RetrievalTool(Tool[RetrievalInput, RetrievalOutput]):
    """Tenant-scoped hybrid (BM25 + dense) search as the asking principals; the access filter lives in the backend."""

    name: ClassVar[str] = "retrieval"
    description: ClassVar[str] = "Search the tenant's indexed documents for passages that answer the question."
    input_model: ClassVar[type[ToolInput]] = RetrievalInput
    output_model: ClassVar[type[ToolOutput]] = RetrievalOutput

    def __init__(self, retriever: HybridRetriever) -> None:
        self.retriever = retriever

    def run(self, args: RetrievalInput) -> RetrievalOutput:
        return RetrievalOutput(hits=self.retriever.retrieve(args.query, tenant=args.tenant, k=args.k, principals=args.principals))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retriever": self.retriever.to_dict()}
