"""Agent tools behind one interface (`Tool`): retrieval now, image tools later."""

from agents.tools.base import Tool, ToolInput, ToolOutput
from agents.tools.retrieval import RetrievalInput, RetrievalOutput, RetrievalTool

__all__ = ["RetrievalInput", "RetrievalOutput", "RetrievalTool", "Tool", "ToolInput", "ToolOutput"]
