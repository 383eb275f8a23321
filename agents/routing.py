"""Route a request without asking the model: answer directly, retrieve, or call another tool.

Why rules and not the LLM: with SmolLM2-135M on CPU a routing call costs about a second of
decoding (prompt plus a few tokens) and its choice among tools is close to chance; the cases
that matter are decidable from the request itself. `retrieval: false` answers from the model
alone; a pinned tool is used as asked; an attached image goes to image search; a tool whose trigger patterns match the question is
used; greetings and thanks are answered directly; everything else is a knowledge question and
goes to retrieval, the default tool.

    >>> route(AgentQuery(question="thanks!"), {}).node
    'direct'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel

from agents.tools.base import Tool
from agents.types import AgentQuery

RETRIEVAL = "retrieval"
IMAGE_SEARCH = "image_search"  # agents/tools/images.py: chosen for an attached image
# Short social messages that no passage can answer (and that retrieval would only clutter).
_SMALL_TALK = re.compile(
    r"^\W*(hi|hello|hey|hiya|good (morning|afternoon|evening|night)|thanks?( you)?( very much| a lot)?|thx|cheers|"
    r"ok(ay)?|great|cool|bye|goodbye|see you)\W*(there|ragloop)?\W*$", re.IGNORECASE)


class Route(BaseModel):
    node: Literal["direct", "retrieve", "tool"]
    tool: str | None = None
    reason: str


def route(query: AgentQuery, tools: Mapping[str, Tool]) -> Route:
    """The first rule that applies, in the order of the module docstring."""
    if not query.retrieval:
        return Route(node="direct", reason="retrieval disabled by the request")
    if query.tool is not None:
        if query.tool not in tools:
            raise ValueError(f"tool {query.tool!r} is not registered; available: {sorted(tools)}")
        node = "retrieve" if query.tool == RETRIEVAL else "tool"
        return Route(node=node, tool=query.tool, reason="tool pinned by the request")
    if query.images and IMAGE_SEARCH in tools:
        return Route(node="tool", tool=IMAGE_SEARCH, reason="an image is attached")
    for name, tool in tools.items():
        if name != RETRIEVAL and tool.wants(query.question):
            return Route(node="tool", tool=name, reason=f"question matches a trigger of {name!r}")
    if _SMALL_TALK.match(query.question):
        return Route(node="direct", reason="small talk")
    return Route(node="retrieve", tool=RETRIEVAL, reason="knowledge question")
